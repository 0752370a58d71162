CREATE INDEX cases_severity ON cases(severity, last_seen_at, id);
CREATE INDEX cases_assignee ON cases(assignee_id, last_seen_at);
