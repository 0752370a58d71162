DROP TRIGGER cases_title_fts_update;
DROP TRIGGER cases_title_fts_delete;
DROP TRIGGER cases_title_fts_insert;
DROP TABLE cases_title_fts;
