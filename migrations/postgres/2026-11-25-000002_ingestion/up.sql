-- Ingestion sources, normalized alerts with their observables, and the cases they group into.

CREATE TABLE sources (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    hmac_secret TEXT,
    config TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    disabled_at TIMESTAMP
);

CREATE TABLE cases (
    id BIGSERIAL PRIMARY KEY,
    title TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('new', 'triage', 'in_progress', 'contained', 'resolved', 'closed')),
    disposition TEXT CHECK (disposition IN ('true_positive', 'false_positive', 'benign', 'duplicate')),
    severity INTEGER NOT NULL,
    assignee_id BIGINT REFERENCES users(id),
    correlation_key TEXT NOT NULL,
    source_id BIGINT REFERENCES sources(id),
    alert_count INTEGER NOT NULL,
    first_seen_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    acknowledged_at TIMESTAMP,
    resolved_at TIMESTAMP,
    closed_at TIMESTAMP,
    ack_due_at TIMESTAMP,
    resolve_due_at TIMESTAMP,
    merged_into_id BIGINT REFERENCES cases(id)
);
CREATE INDEX cases_correlation ON cases(correlation_key, last_seen_at);
CREATE INDEX cases_queue ON cases(status, last_seen_at, id);
CREATE INDEX cases_severity ON cases(severity, last_seen_at, id);
CREATE INDEX cases_last_seen ON cases(last_seen_at, id);
CREATE INDEX cases_assignee ON cases(assignee_id, last_seen_at);

CREATE TABLE case_tags (
    case_id BIGINT NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (case_id, tag)
);
CREATE INDEX case_tags_tag ON case_tags(tag, case_id);

CREATE TABLE case_comments (
    id BIGSERIAL PRIMARY KEY,
    case_id BIGINT NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX case_comments_case ON case_comments(case_id, id);

CREATE TABLE alerts (
    id BIGSERIAL PRIMARY KEY,
    case_id BIGINT NOT NULL REFERENCES cases(id),
    source_id BIGINT NOT NULL REFERENCES sources(id),
    fingerprint TEXT NOT NULL,
    class TEXT NOT NULL,
    severity INTEGER NOT NULL,
    state TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT,
    vendor TEXT NOT NULL,
    product TEXT NOT NULL,
    rule_id TEXT,
    rule_name TEXT,
    external_id TEXT,
    event_time TIMESTAMP,
    received_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    occurrences INTEGER NOT NULL,
    tags TEXT NOT NULL,
    raw TEXT NOT NULL
);
CREATE INDEX alerts_dedup ON alerts(source_id, fingerprint, last_seen_at);
CREATE INDEX alerts_case ON alerts(case_id, id);

CREATE TABLE alert_observables (
    alert_id BIGINT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (alert_id, kind, value, role)
);
CREATE INDEX alert_observables_value ON alert_observables(kind, value);
