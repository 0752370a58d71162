-- Nothing to do on PostgreSQL: its title index is a trigram index on the table, kept by
-- PostgreSQL itself. (SQLite's FTS5 title index is now fed by the code inserting cases.)
SELECT 1;
