DROP INDEX cases_open_correlation;
CREATE INDEX cases_correlation ON cases(correlation_key, last_seen_at);
