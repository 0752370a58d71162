CREATE TRIGGER cases_title_fts_insert AFTER INSERT ON cases BEGIN
    INSERT INTO cases_title_fts(rowid, title) VALUES (new.id, new.title);
END;
