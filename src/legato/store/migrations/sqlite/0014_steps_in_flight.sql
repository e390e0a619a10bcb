-- Steps in flight. SQLite has no NOTIFY: a run's status change is told to the
-- watchers of the process that made it (store/sqlite/watch.py), and other
-- processes poll. Step leases mirror the Postgres table.
CREATE TABLE step_leases (
    run_id       TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    holder       TEXT,
    expires_at   REAL    NOT NULL,
    heartbeat_at REAL,
    details      TEXT,
    PRIMARY KEY (run_id, seq)
);
