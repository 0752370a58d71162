DROP INDEX approval_gates_case;
DROP INDEX audit_events_target;
