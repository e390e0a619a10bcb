-- A map state's items, one row per finished item (postgres/0012_map_items.sql).

CREATE TABLE map_items (
    run_id      TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    map_seq     INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    ok          INTEGER NOT NULL,
    result      TEXT,
    error       TEXT,
    finished_at REAL    NOT NULL,
    PRIMARY KEY (run_id, map_seq, idx)
);
