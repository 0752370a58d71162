-- New cases enter the title index from the code that inserts them
-- (`cases::query::index_titles`, after the transaction's other statements) instead of
-- from a trigger. FTS5 writes its pending terms out as a new segment at the start of
-- every statement that follows a write to it in the same transaction; with the trigger,
-- the ingestion writer flushed one segment per new case, and merged them later. The
-- update and delete triggers stay: those statements are rare.
DROP TRIGGER cases_title_fts_insert;
