-- Words in case titles, indexed by trigrams (pg_trgm) so `lower(title) LIKE '%word%'`
-- finds a rare word without scanning every case. pg_trgm ships with PostgreSQL and is a
-- trusted extension, but a server built without contrib lacks it: the search then still
-- works, by scanning, and the migration says so instead of failing.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX cases_title_trgm ON cases USING gin (lower(title) gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%); the case title search scans', SQLERRM;
END
$$;
