-- Words in case titles, indexed by trigrams so the queue's title search finds a rare word
-- without scanning every case. External content: the titles live only in `cases`; the
-- triggers keep the index in step in the same transaction as the case row.
CREATE VIRTUAL TABLE cases_title_fts USING fts5(
    title,
    content = 'cases',
    content_rowid = 'id',
    tokenize = 'trigram case_sensitive 0'
);
INSERT INTO cases_title_fts(cases_title_fts) VALUES ('rebuild');
CREATE TRIGGER cases_title_fts_insert AFTER INSERT ON cases BEGIN
    INSERT INTO cases_title_fts(rowid, title) VALUES (new.id, new.title);
END;
CREATE TRIGGER cases_title_fts_delete AFTER DELETE ON cases BEGIN
    INSERT INTO cases_title_fts(cases_title_fts, rowid, title) VALUES ('delete', old.id, old.title);
END;
CREATE TRIGGER cases_title_fts_update AFTER UPDATE OF title ON cases BEGIN
    INSERT INTO cases_title_fts(cases_title_fts, rowid, title) VALUES ('delete', old.id, old.title);
    INSERT INTO cases_title_fts(rowid, title) VALUES (new.id, new.title);
END;
