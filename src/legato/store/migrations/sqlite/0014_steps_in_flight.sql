-- Steps in flight. SQLite has no NOTIFY: a run's status change is told to the
-- watchers of the process that made it (store/sqlite/watch.py), and other
-- processes poll. Nothing changes in the schema; the number is kept in step
-- with the Postgres migrations.
SELECT 1;
