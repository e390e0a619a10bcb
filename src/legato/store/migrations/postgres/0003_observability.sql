-- Indexes for the dashboard's aggregates (legato/store/postgres/insights.py).

-- Business figures over a time range (completed per hour, completion time,
-- failure rate, SLA) come from an index-only scan of finished runs. It
-- replaces the plain index on finished_at.
CREATE INDEX runs_finished_cover_idx ON runs (finished_at)
    INCLUDE (workflow, status, created_at, sla_met)
    WHERE finished_at IS NOT NULL;
DROP INDEX runs_finished_idx;

-- Step success rates and latencies read the latest step outcomes of the
-- history by time; error patterns read the (rarer) failures.
CREATE INDEX history_outcomes_idx ON history (at)
    WHERE kind IN ('step_succeeded', 'step_failed', 'compensation_succeeded', 'compensation_failed');
CREATE INDEX history_failures_idx ON history (at)
    WHERE kind IN ('step_failed', 'compensation_failed');
