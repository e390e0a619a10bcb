-- A run's input and data are rewritten or read on every transition; Postgres
-- compresses a large one (over about 2 KB) before storing it out of line.
-- lz4 does that several times faster than the default pglz, at a similar ratio
-- on JSON, and decompresses faster still. A server built without lz4 keeps
-- pglz: this is a speed-up, not a format, and existing values stay as they are
-- (each is recompressed when it is next written).
DO $$
BEGIN
    ALTER TABLE runs ALTER COLUMN data SET COMPRESSION lz4, ALTER COLUMN input SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available on this server: run documents stay compressed with pglz';
END
$$;
