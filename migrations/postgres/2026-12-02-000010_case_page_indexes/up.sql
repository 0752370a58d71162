-- The case page reads a case's audited actions and its approval requests.
CREATE INDEX audit_events_target ON audit_events(target, seq);
CREATE INDEX approval_gates_case ON approval_gates(case_id, id);
-- The queue: each filter the console offers with each order it offers, so a page is one
-- index range read in order (see "Console: cases" in the README for the measurements).
CREATE INDEX cases_created_id ON cases(created_at, id);
CREATE INDEX cases_status_created ON cases(status, created_at, id);
CREATE INDEX cases_severity_id ON cases(severity, id);
CREATE INDEX cases_status_severity ON cases(status, severity, id);
