DROP TABLE email_outbox;
DROP TABLE playbook_schedules;
DROP TABLE approval_decisions;
DROP TABLE approval_gates;
DROP TABLE step_runs;
DROP TABLE playbook_runs;
DROP TABLE playbook_definitions;
DROP TABLE engine_events;
