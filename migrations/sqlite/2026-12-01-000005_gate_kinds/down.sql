ALTER TABLE approval_gates DROP COLUMN kind;
