-- The dashboard aggregates over bounded time windows; these indexes keep each of its
-- queries a range scan instead of a pass over the whole table.
CREATE INDEX cases_created ON cases(created_at);
CREATE INDEX cases_acknowledged ON cases(acknowledged_at);
CREATE INDEX cases_resolved ON cases(resolved_at);
CREATE INDEX playbook_runs_finished ON playbook_runs(finished_at);
CREATE INDEX step_runs_finished ON step_runs(finished_at);
