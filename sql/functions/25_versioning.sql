-- Versioning: history, revert, snapshots, time travel, retention (pixelgres.server.versioning: history, revert, vacuum).

-- The default of every managed table's _pxt_v (extension/pixelgres.c): the statement's version.
CREATE OR REPLACE FUNCTION pxt._version_of(name text) RETURNS integer
    AS 'MODULE_PATHNAME', 'pxt_version_of' LANGUAGE C STABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION pxt.history(tbl text)
RETURNS TABLE (version integer, created_at timestamptz, "user" name, change_type text,
               inserts bigint, updates bigint, deletes bigint, errors bigint, schema_change jsonb)
LANGUAGE plpython3u AS $py$
#@pxt
oid = srv.catalog.managed(tbl)
return plpy.execute(plpy.prepare(
    "SELECT version, created_at, created_by AS user, change_type, inserts, updates, deletes, errors, schema_change "
    "FROM pxt.versions WHERE relid = $1 ORDER BY version DESC", ["oid"]), [oid])
$py$;
COMMENT ON FUNCTION pxt.history(text) IS 'Versions of a managed table, newest first';

CREATE OR REPLACE FUNCTION pxt.revert(tbl text, if_pinned text DEFAULT 'materialize') RETURNS integer
LANGUAGE plpython3u AS $py$
#@pxt
return srv.revert.revert(srv.catalog.managed(tbl), if_pinned)
$py$;
COMMENT ON FUNCTION pxt.revert(text, text) IS
  'Undo the latest version (data or schema); returns the version the table is now at. A snapshot of the undone version keeps its rows (if_pinned => ''materialize'') or the revert is refused (''error'')';

CREATE OR REPLACE FUNCTION pxt.create_snapshot(name text, tbl text, version integer DEFAULT NULL)
RETURNS regclass LANGUAGE plpython3u AS $py$
#@pxt
return srv.history.create_snapshot(name, srv.catalog.managed(tbl), version)
$py$;
COMMENT ON FUNCTION pxt.create_snapshot(text, text, integer) IS
  'A read-only view of the table as it was at a version (default: now), unaffected by later changes (reverts included)';

CREATE OR REPLACE FUNCTION pxt.drop_snapshot(name text) RETURNS void LANGUAGE plpython3u AS $py$
#@pxt
srv.history.drop_snapshot(name)
$py$;

CREATE OR REPLACE FUNCTION pxt.at_version(tbl text, version integer) RETURNS regclass
LANGUAGE plpython3u AS $py$
#@pxt
return srv.history.at_version(srv.catalog.managed(tbl), version)
$py$;
COMMENT ON FUNCTION pxt.at_version(text, integer) IS
  'Time travel: creates (or replaces) the temporary view "<table>@<version>" with the rows and columns of that version and returns its name';

CREATE OR REPLACE FUNCTION pxt.rows_at_version(tbl text, version integer) RETURNS SETOF jsonb
LANGUAGE plpython3u AS $py$
#@pxt
sql = srv.history.version_sql(srv.catalog.managed(tbl), version)
return [r["j"] for r in plpy.execute(f"SELECT to_jsonb(v) AS j FROM ({sql}) v ORDER BY v._pxt_rowid")]
$py$;

CREATE OR REPLACE FUNCTION pxt.vacuum_history(tbl text, keep integer DEFAULT NULL, older_than interval DEFAULT NULL)
RETURNS jsonb LANGUAGE plpython3u AS $py$
#@pxt
import json
return json.dumps(srv.vacuum.vacuum_history(srv.catalog.managed(tbl), keep, older_than))
$py$;
COMMENT ON FUNCTION pxt.vacuum_history(text, integer, interval) IS
  'Forget row versions older than the last keep versions or older_than; refuses versions pinned by snapshots';

CREATE OR REPLACE FUNCTION pxt.add_column(tbl text, name text, type text) RETURNS text LANGUAGE plpython3u AS $py$
#@pxt
return srv.tables.add_column(tbl, name, type)
$py$;

CREATE OR REPLACE FUNCTION pxt.rename_column(tbl text, old_name text, new_name text) RETURNS text
LANGUAGE plpython3u AS $py$
#@pxt
return srv.tables.rename_column(tbl, old_name, new_name)
$py$;

CREATE OR REPLACE FUNCTION pxt.drop_table(name text, force boolean DEFAULT false) RETURNS void
LANGUAGE plpython3u AS $py$
#@pxt
srv.tables.drop_table(name, force)
$py$;

CREATE OR REPLACE FUNCTION pxt.vacuum_media(min_age interval DEFAULT '1 hour', dry_run boolean DEFAULT false)
RETURNS jsonb LANGUAGE plpython3u AS $py$
#@pxt
import json
secs = plpy.execute(plpy.prepare("SELECT extract(epoch FROM $1::interval)::float8 AS s", ["text"]), [min_age])[0]["s"]
return json.dumps(srv.vacuum.vacuum_media(secs, dry_run))
$py$;
REVOKE EXECUTE ON FUNCTION pxt.vacuum_media(interval, boolean) FROM PUBLIC;
COMMENT ON FUNCTION pxt.vacuum_media(interval, boolean) IS
  'Delete media store files that no live row, history row or snapshot of this database references (older than min_age)';

-- A row's _pxt_v says which version wrote it: time travel and revert trust it, so only pixelgres
-- sets it. An UPDATE naming the column fires this (UPDATE OF _pxt_v: other updates never do).
-- A statement trigger, not a row trigger: a BEFORE ROW UPDATE trigger, even one that never
-- fires, makes every update fetch and lock each old row first (W5: 0.4 ms per 1000 rows).
CREATE OR REPLACE FUNCTION pxt._guard_version() RETURNS trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'column _pxt_v of % is set by pixelgres: it records the version that wrote each row, so an UPDATE may not set it',
        pxt._display(TG_RELID) USING ERRCODE = '428C9';
END $$;
-- tables created before (an upgrade) get it too, in place of the row trigger they had
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT t.relid FROM pxt.tables t JOIN pg_catalog.pg_attribute a
             ON a.attrelid OPERATOR(pg_catalog.=) t.relid AND a.attname OPERATOR(pg_catalog.=) '_pxt_v'
             AND NOT a.attisdropped LOOP
        EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER pxt_guard_version BEFORE UPDATE OF _pxt_v ON %s '
                                  'FOR EACH STATEMENT EXECUTE FUNCTION pxt._guard_version()', r.relid);
    END LOOP;
END $$;
