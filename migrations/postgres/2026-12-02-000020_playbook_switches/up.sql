-- Whether a loaded playbook may start runs. A playbook without a row is enabled; an
-- admin's disable sets `disabled_at` (a flag as a nullable timestamp, as elsewhere), and
-- every place a run starts (trigger events, schedules, manual and child runs) reads it in
-- the transaction that would create the run.
CREATE TABLE playbook_switches (
    playbook_id TEXT PRIMARY KEY,
    disabled_at TIMESTAMP,
    changed_by TEXT NOT NULL,
    changed_at TIMESTAMP NOT NULL
);
