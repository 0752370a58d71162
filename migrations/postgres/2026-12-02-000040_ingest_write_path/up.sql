-- Open cases by correlation key: only open, unmerged cases and no time, so touching a
-- case (last_seen_at moves with nearly every alert) does not rewrite this index. The
-- terms match the ingestion writer's lookup text, so the planner can use it.
DROP INDEX cases_correlation;
CREATE INDEX cases_open_correlation ON cases(correlation_key, id)
    WHERE status NOT IN ('resolved', 'closed') AND merged_into_id IS NULL;
