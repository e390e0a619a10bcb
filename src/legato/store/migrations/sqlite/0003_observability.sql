-- Indexes for the dashboard's aggregates (legato/store/sqlite/insights.py).

CREATE INDEX runs_finished_cover_idx ON runs (finished_at, workflow, status, created_at, sla_met)
    WHERE finished_at IS NOT NULL;
DROP INDEX runs_finished_idx;

CREATE INDEX history_outcomes_idx ON history (at)
    WHERE kind IN ('step_succeeded', 'step_failed', 'compensation_succeeded', 'compensation_failed');
CREATE INDEX history_failures_idx ON history (at)
    WHERE kind IN ('step_failed', 'compensation_failed');
