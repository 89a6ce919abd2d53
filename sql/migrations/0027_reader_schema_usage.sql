-- Run once (0.2.0). pxt_reader could read a managed table's rows (GRANT SELECT on each table)
-- but not reach a schema pixelgres created for it ("permission denied for schema ml"): new
-- schemas grant it USAGE (catalog.ensure_schema), and the schemas of existing tables do here.
DO $$
DECLARE s name;
BEGIN
    FOR s IN SELECT DISTINCT n.nspname FROM pxt.tables t JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relid
             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
             WHERE n.nspname OPERATOR(pg_catalog.<>) 'public'
    LOOP
        EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %I TO pxt_reader', s);
    END LOOP;
END $$;
