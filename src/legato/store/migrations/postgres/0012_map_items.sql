-- A map state's items, one row per finished item: its result (or error) and
-- the order it finished in. Written by the transition that finishes the item,
-- so a map of 10,000 items never rewrites one growing document; the join
-- gathers the results into the run's data once, in item order.

CREATE TABLE map_items (
    run_id      uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    map_seq     integer     NOT NULL,
    idx         integer     NOT NULL,
    ok          boolean     NOT NULL,
    result      jsonb,
    error       jsonb,
    finished_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, map_seq, idx)
);
