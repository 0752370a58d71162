DROP TABLE approval_links;

CREATE TABLE email_outbox_old (
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
INSERT INTO email_outbox_old (id, recipients, subject, body_text, body_html, origin, status,
    attempts, last_error, created_at, next_attempt_at, sent_at)
SELECT id, recipients, subject, body_text, body_html, origin,
    CASE status WHEN 'sending' THEN 'queued' WHEN 'cancelled' THEN 'failed' ELSE status END,
    attempts, last_error, created_at, next_attempt_at, sent_at FROM email_outbox;
DROP TABLE email_outbox;
ALTER TABLE email_outbox_old RENAME TO email_outbox;
CREATE INDEX email_outbox_status ON email_outbox(status, next_attempt_at);

ALTER TABLE approval_gates DROP COLUMN target;
