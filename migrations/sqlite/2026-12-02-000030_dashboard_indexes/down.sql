DROP INDEX step_runs_finished;
DROP INDEX playbook_runs_finished;
DROP INDEX cases_resolved;
DROP INDEX cases_acknowledged;
DROP INDEX cases_created;
