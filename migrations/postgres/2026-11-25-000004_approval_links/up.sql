-- Approval e-mail: what a gated step would act on, outbox rows that belong to a gate and
-- an approver, delivery states, and the single-use links sent to approvers.

ALTER TABLE approval_gates ADD COLUMN target TEXT;

-- New states: `sending` (claimed by a sender), `cancelled` (the gate settled before delivery).
ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_status_check;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_status_check
    CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'cancelled'));
ALTER TABLE email_outbox ADD COLUMN gate_id BIGINT REFERENCES approval_gates(id) ON DELETE CASCADE;
ALTER TABLE email_outbox ADD COLUMN user_id BIGINT REFERENCES users(id);
CREATE INDEX email_outbox_gate ON email_outbox(gate_id);

CREATE TABLE approval_links (
    id BIGSERIAL PRIMARY KEY,
    gate_id BIGINT NOT NULL REFERENCES approval_gates(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id),
    outbox_id BIGINT REFERENCES email_outbox(id) ON DELETE SET NULL,
    -- SHA-256 of the token; the token itself is only ever in the e-mail.
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX approval_links_gate ON approval_links(gate_id);
