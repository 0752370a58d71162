-- Nothing to do on PostgreSQL: its planner uses the severity and assignee indexes that
-- SQLite's queue does not (SQLite drops them in this migration).
SELECT 1;
