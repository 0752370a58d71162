DROP INDEX cases_status_severity;
DROP INDEX cases_severity_id;
DROP INDEX cases_status_created;
DROP INDEX cases_created_id;
DROP INDEX approval_gates_case;
DROP INDEX audit_events_target;
