DROP INDEX alerts_dedup_key;
CREATE INDEX alerts_dedup ON alerts(source_id, fingerprint, last_seen_at);
CREATE INDEX alert_observables_value ON alert_observables(kind, value);
