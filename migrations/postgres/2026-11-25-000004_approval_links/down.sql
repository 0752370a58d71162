DROP TABLE approval_links;

DROP INDEX email_outbox_gate;
ALTER TABLE email_outbox DROP COLUMN user_id;
ALTER TABLE email_outbox DROP COLUMN gate_id;
UPDATE email_outbox SET status = 'queued' WHERE status = 'sending';
UPDATE email_outbox SET status = 'failed' WHERE status = 'cancelled';
ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_status_check;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_status_check
    CHECK (status IN ('queued', 'sent', 'failed'));

ALTER TABLE approval_gates DROP COLUMN target;
