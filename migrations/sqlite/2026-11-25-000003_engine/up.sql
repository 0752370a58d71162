-- The playbook engine: the trigger outbox, playbook definitions runs started from, runs
-- and their steps, approval gates with their decisions, cron schedule state, and the
-- outgoing email queue.

-- Domain events written in the transaction that caused them; the dispatcher turns them
-- into runs and deletes them, so a crash after the commit loses no trigger.
CREATE TABLE engine_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    case_id INTEGER,
    alert_id INTEGER,
    details TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- Each playbook definition a run was started from, by content hash, so a run finishes
-- with the definition it started with even after the file changes.
CREATE TABLE playbook_definitions (
    hash TEXT PRIMARY KEY,
    playbook_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE playbook_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    playbook_id TEXT NOT NULL,
    playbook_version INTEGER NOT NULL,
    definition_hash TEXT NOT NULL REFERENCES playbook_definitions(hash),
    case_id INTEGER REFERENCES cases(id),
    trigger_kind TEXT NOT NULL,
    trigger_data TEXT NOT NULL,
    inputs TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    parent_step_run_id INTEGER,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled')),
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL,
    wake_at TIMESTAMP,
    signal INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at TIMESTAMP,
    cancel_requested_at TIMESTAMP,
    cancel_requested_by TEXT
);
CREATE INDEX playbook_runs_active ON playbook_runs(status, wake_at);
CREATE INDEX playbook_runs_case ON playbook_runs(case_id, id);
CREATE INDEX playbook_runs_playbook ON playbook_runs(playbook_id, id);

-- One row per step (item_index -1) and, for `foreach` steps, one per item (0, 1, ...).
CREATE TABLE step_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES playbook_runs(id) ON DELETE CASCADE,
    step_id TEXT NOT NULL,
    item_index INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'retrying', 'waiting', 'waiting_approval', 'succeeded', 'failed', 'skipped', 'rejected', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    item TEXT,
    items TEXT,
    input TEXT,
    output TEXT,
    error TEXT,
    idempotency_key TEXT,
    child_run_id INTEGER,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    next_attempt_at TIMESTAMP,
    UNIQUE (run_id, step_id, item_index)
);

CREATE TABLE approval_gates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES playbook_runs(id) ON DELETE CASCADE,
    step_id TEXT NOT NULL,
    case_id INTEGER REFERENCES cases(id),
    action TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'timed_out', 'cancelled')),
    message TEXT NOT NULL,
    approvers TEXT NOT NULL,
    required INTEGER NOT NULL,
    requested_by TEXT NOT NULL,
    escalation_level INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    deadline_at TIMESTAMP NOT NULL,
    decided_at TIMESTAMP,
    outcome_reason TEXT,
    UNIQUE (run_id, step_id)
);
CREATE INDEX approval_gates_pending ON approval_gates(status, deadline_at);

CREATE TABLE approval_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    gate_id INTEGER NOT NULL REFERENCES approval_gates(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
    comment TEXT,
    channel TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (gate_id, user_id)
);

-- The next time each scheduled playbook fires; advanced with a compare-and-set so a
-- firing happens once however many processes look.
CREATE TABLE playbook_schedules (
    playbook_id TEXT PRIMARY KEY,
    schedule TEXT NOT NULL,
    next_fire_at TIMESTAMP NOT NULL
);

CREATE TABLE email_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipients TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT,
    origin TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    next_attempt_at TIMESTAMP,
    sent_at TIMESTAMP
);
CREATE INDEX email_outbox_status ON email_outbox(status, next_attempt_at);
