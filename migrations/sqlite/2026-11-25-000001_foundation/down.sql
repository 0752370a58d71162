DROP TABLE audit_head;
DROP TABLE audit_events;
DROP TABLE setup_tokens;
DROP TABLE api_tokens;
DROP TABLE sessions;
DROP TABLE users;
