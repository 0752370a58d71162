DROP INDEX IF EXISTS cases_title_trgm;
