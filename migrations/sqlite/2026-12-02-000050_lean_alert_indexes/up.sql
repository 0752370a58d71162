-- Every index an alert writes into is a random page write in each group commit, copied
-- to the log and again to the database by the checkpoint (see "Where ingestion stands"
-- in the README). Two of them are made smaller here.
--
-- Observables by value: nothing reads this index (the case page reads observables by
-- alert id, the primary key). It was the largest random write of ingestion: two to four
-- entries per alert. A pivot from an observable to its alerts would bring it back.
DROP INDEX alert_observables_value;

-- Repeats of an alert: the lookup needs only source and fingerprint. The first 16 hex
-- digits (64 bits of SHA-256) make an entry a quarter of the size, so a commit's random
-- inserts share far fewer pages; the full fingerprint is compared on the row. Without
-- last_seen_at in the key a repeat no longer moves its entry.
DROP INDEX alerts_dedup;
CREATE INDEX alerts_dedup_key ON alerts(source_id, substr(fingerprint, 1, 16));
