-- Tables managed before faces existed (sql/migrations/0028_faces.sql) get theirs: their rows
-- move to pxt_data and their name becomes the view of their user columns. Idempotent: a fresh
-- install, or a table that already has its face, is left as it is.
CREATE OR REPLACE FUNCTION pxt._adopt_faces() RETURNS integer LANGUAGE plpython3u AS $py$
#@pxt
return srv.tables.adopt_faces()
$py$;
REVOKE EXECUTE ON FUNCTION pxt._adopt_faces() FROM PUBLIC;
SELECT pxt._adopt_faces();
