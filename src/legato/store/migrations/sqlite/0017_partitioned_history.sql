-- Migration 0017 partitions Postgres's history by time; SQLite keeps one history
-- table and plain deletes (docs/retention.md). What both get: search attributes,
-- the values of the paths a workflow declares, as a JSON object of strings,
-- written with the transition that changes the run's data. SQLite filters them
-- with json_extract, without an index: it is the embedded backend for trying
-- and developing, not for millions of runs.
ALTER TABLE runs ADD COLUMN search TEXT;
