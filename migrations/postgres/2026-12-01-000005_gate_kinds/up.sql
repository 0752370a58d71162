-- Gates of two kinds: `approval` (a containment step waits for approvers) and
-- `acknowledgement` (a step waits for someone to acknowledge, e.g. an on-call page, and
-- the playbook escalates when nobody does in time). Both share the deadline rows and the
-- scheduler. An acknowledgement is stored in the existing vocabulary: the gate `approved`,
-- the decision `approve`; the domain shows them as `acknowledged` / `acknowledge`.
ALTER TABLE approval_gates ADD COLUMN kind TEXT NOT NULL DEFAULT 'approval';
