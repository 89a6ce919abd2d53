-- Tables managed before faces existed (sql/migrations/0028_faces.sql) get theirs: their rows
-- move to pxt_data and their name becomes the view of their user columns; iterator views get
-- their joined view without bookkeeping columns and pxt.internal_relation's. Idempotent: on a
-- fresh install, or once done, nothing changes.
CREATE OR REPLACE FUNCTION pxt._adopt_faces() RETURNS integer LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
n = srv.tables.adopt_faces()
_it.sync_all()
return n
$py$;
REVOKE EXECUTE ON FUNCTION pxt._adopt_faces() FROM PUBLIC;

-- This runs inside the extension's script, where CREATE OR REPLACE of an object the extension
-- does not own fails and every object made becomes the extension's: the generated functions
-- are lent to the extension meanwhile, and all it gained is given back to the users (whose
-- objects pg_dump must dump).
DO $$
DECLARE
    ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'pixelgres');
    before text[];
    r record;
BEGIN
    before := ARRAY(SELECT d.classid::text || ':' || d.objid::text FROM pg_catalog.pg_depend d
                    WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
                      AND d.refobjid OPERATOR(pg_catalog.=) ext AND d.deptype OPERATOR(pg_catalog.=) 'e');
    FOR r IN SELECT p.oid::pg_catalog.regprocedure AS f FROM pg_catalog.pg_proc p
             WHERE p.pronamespace OPERATOR(pg_catalog.=) 'pxt_internal'::pg_catalog.regnamespace
               AND ('pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid::text || ':' || p.oid::text)
                   OPERATOR(pg_catalog.<>) ALL (before) LOOP
        EXECUTE pg_catalog.format('ALTER EXTENSION pixelgres ADD FUNCTION %s', r.f);
    END LOOP;
    PERFORM pxt._adopt_faces();
    FOR r IN SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
             WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
               AND d.refobjid OPERATOR(pg_catalog.=) ext AND d.deptype OPERATOR(pg_catalog.=) 'e'
               AND (d.classid::text || ':' || d.objid::text) OPERATOR(pg_catalog.<>) ALL (before) LOOP
        IF r.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass THEN
            EXECUTE pg_catalog.format('ALTER EXTENSION pixelgres DROP FUNCTION %s', r.objid::pg_catalog.regprocedure);
        ELSIF r.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass THEN
            EXECUTE pg_catalog.format('ALTER EXTENSION pixelgres DROP %s %s',
                (SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                        ELSE 'TABLE' END FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) r.objid),
                r.objid::pg_catalog.regclass);
        ELSIF r.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass THEN
            EXECUTE pg_catalog.format('ALTER EXTENSION pixelgres DROP TYPE %s', r.objid::pg_catalog.regtype);
        END IF;
    END LOOP;
END $$;
