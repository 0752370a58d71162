-- The ingestion writer's path through the schema, made shorter.
--
-- Open cases by correlation key: the old index (correlation_key, last_seen_at) held every
-- case and was rewritten each time a case's last_seen_at moved, that is for nearly every
-- alert. This one holds only open, unmerged cases and no time, so touching a case leaves
-- it alone; its terms match the writer's lookup text exactly, which SQLite needs to use a
-- partial index.
DROP INDEX cases_correlation;
CREATE INDEX cases_open_correlation ON cases(correlation_key, id)
    WHERE status NOT IN ('resolved', 'closed') AND merged_into_id IS NULL;

-- Observables keyed by their primary key alone (WITHOUT ROWID): the rowid table and the
-- primary-key index were two B-trees written per observable, now one.
CREATE TABLE alert_observables_keyed (
    alert_id INTEGER NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (alert_id, kind, value, role)
) WITHOUT ROWID;
INSERT INTO alert_observables_keyed (alert_id, kind, value, role)
    SELECT alert_id, kind, value, role FROM alert_observables;
DROP TABLE alert_observables;
ALTER TABLE alert_observables_keyed RENAME TO alert_observables;
CREATE INDEX alert_observables_value ON alert_observables(kind, value);
