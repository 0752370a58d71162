DROP TABLE audit_head;
DROP TABLE audit_events;
DROP FUNCTION tocsin_audit_append_only();
DROP TABLE setup_tokens;
DROP TABLE api_tokens;
DROP TABLE sessions;
DROP TABLE users;
