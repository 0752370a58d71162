-- Two case indexes that SQLite never reads: the queue steers SQLite's planner to the
-- (status, key, id) and (key, id) indexes and writes the severity and assignee terms
-- with a unary `+`, so that they are checked on the rows read (see `cases::query::list`).
-- Both contain `last_seen_at`, so every alert that reached a case moved an entry in each.
-- PostgreSQL plans those terms itself and keeps both.
DROP INDEX cases_severity;
DROP INDEX cases_assignee;
