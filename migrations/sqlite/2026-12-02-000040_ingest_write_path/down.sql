CREATE TABLE alert_observables_rowid (
    alert_id INTEGER NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (alert_id, kind, value, role)
);
INSERT INTO alert_observables_rowid (alert_id, kind, value, role)
    SELECT alert_id, kind, value, role FROM alert_observables;
DROP TABLE alert_observables;
ALTER TABLE alert_observables_rowid RENAME TO alert_observables;
CREATE INDEX alert_observables_value ON alert_observables(kind, value);

DROP INDEX cases_open_correlation;
CREATE INDEX cases_correlation ON cases(correlation_key, last_seen_at);
