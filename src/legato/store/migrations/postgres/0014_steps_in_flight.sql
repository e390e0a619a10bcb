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
