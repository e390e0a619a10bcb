-- Steps in flight: a run's status change is announced on the channel
-- "<schema>_runs" (payload "<run id> <status>"), so that a worker can interrupt
-- the handlers of a run that was cancelled or failed, and a client waiting for
-- a result is woken without polling. A trigger rather than a statement in the
-- write path: the group-commit statement stays as it is, and only the update
-- that changes the status (about twice per run, never per step) pays for it.

CREATE FUNCTION legato_run_status_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_runs', NEW.id::text || ' ' || NEW.status);
    RETURN NULL;
END
$$;

CREATE TRIGGER runs_status_changed
    AFTER UPDATE OF status ON runs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION legato_run_status_changed();

-- Step leases: a step whose task sets heartbeat_timeout is held by the worker
-- running it, which renews the lease (and the heartbeat timer's fire_at with
-- it) while the handler runs. When the timer fires, the lease ran out: the
-- worker is gone, and the step is dispatched again. ``details`` is what the
-- handler last gave ctx.heartbeat(); a later attempt reads it to resume.
CREATE TABLE step_leases (
    run_id       uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq          integer     NOT NULL,
    attempt      integer     NOT NULL,
    holder       text,
    expires_at   timestamptz NOT NULL,
    heartbeat_at timestamptz,
    details      jsonb,
    PRIMARY KEY (run_id, seq)
);
