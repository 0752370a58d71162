-- Approval e-mail: what a gated step would act on, outbox rows that belong to a gate and
-- an approver, delivery states, and the single-use links sent to approvers.

ALTER TABLE approval_gates ADD COLUMN target TEXT;

-- SQLite cannot change a CHECK constraint in place: rebuild the outbox with the new states
-- (`sending`: claimed by a sender; `cancelled`: the gate settled before delivery).
CREATE TABLE email_outbox_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipients TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT,
    origin TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    next_attempt_at TIMESTAMP,
    sent_at TIMESTAMP,
    gate_id INTEGER REFERENCES approval_gates(id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users(id)
);
INSERT INTO email_outbox_new (id, recipients, subject, body_text, body_html, origin, status,
    attempts, last_error, created_at, next_attempt_at, sent_at)
SELECT id, recipients, subject, body_text, body_html, origin, status,
    attempts, last_error, created_at, next_attempt_at, sent_at FROM email_outbox;
DROP TABLE email_outbox;
ALTER TABLE email_outbox_new RENAME TO email_outbox;
CREATE INDEX email_outbox_status ON email_outbox(status, next_attempt_at);
CREATE INDEX email_outbox_gate ON email_outbox(gate_id);

CREATE TABLE approval_links (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    gate_id INTEGER NOT NULL REFERENCES approval_gates(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    outbox_id INTEGER REFERENCES email_outbox(id) ON DELETE SET NULL,
    -- SHA-256 of the token; the token itself is only ever in the e-mail.
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX approval_links_gate ON approval_links(gate_id);
