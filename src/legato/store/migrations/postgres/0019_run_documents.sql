-- A run's documents, read on every step and written on every transition.
--
-- runs.data now holds only what the run's steps set over its input: the run's
-- data is input || data. A run starts with its input as its data, and storing
-- both kept (and read back on every step) every event body twice. Rows written
-- before hold the whole document, which reads the same (its keys cover the
-- input's), so nothing is rewritten here. Transitions write only the keys they
-- set (data || patch).
COMMENT ON COLUMN runs.data IS
    'What the run set over its input: the run''s data is input || data (keys of data win)';

-- Postgres compresses a large value (over about 2 KB) before storing it out of
-- line. lz4 does that several times faster than the default pglz, at a similar
-- ratio on JSON, and decompresses faster still. A server built without lz4
-- keeps pglz: this is a speed-up, not a format, and existing values stay as
-- they are (each is recompressed when it is next written).
DO $$
BEGIN
    ALTER TABLE runs ALTER COLUMN data SET COMPRESSION lz4, ALTER COLUMN input SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available on this server: run documents stay compressed with pglz';
END
$$;
