-- The case page reads a case's audited actions and its approval requests.
CREATE INDEX audit_events_target ON audit_events(target, seq);
CREATE INDEX approval_gates_case ON approval_gates(case_id, id);
