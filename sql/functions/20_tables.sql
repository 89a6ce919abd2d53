-- Managed tables and computed columns (logic in pixelgres.server.ddl: tables, triggers).
--
-- search_path: every SQL and PL/pgSQL function pins it (SET search_path = pg_catalog, pg_temp)
-- except the four entry points below that resolve the caller's table names and run the
-- caller's expressions: add_computed_column, alter_computed_column, recompute_columns and
-- process_pending. They write rows, which fires the generated triggers, which call users'
-- own functions; a pinned path would apply inside those and break their unqualified names
-- (see pixelgres.server.ddl.triggers), and a procedure with a SET clause cannot COMMIT. They run
-- with the caller's path instead, so their own code names everything with its schema,
-- operators included (OPERATOR(pg_catalog.=)); tests/test_pgspot.py lists them.

CREATE OR REPLACE FUNCTION pxt.create_table(name text, schema json DEFAULT '{}', if_exists text DEFAULT 'error')
RETURNS regclass LANGUAGE plpython3u AS $py$
#@pxt
return srv.tables.create_table(name, schema, if_exists)
$py$;
COMMENT ON FUNCTION pxt.create_table(text, json, text) IS
  'Create a managed table: schema is {"column": "image|video|audio|document|string|int|float|bool|json|timestamp|date|bytes|<PostgreSQL type>"}';

CREATE OR REPLACE FUNCTION pxt.manage(name text) RETURNS regclass LANGUAGE plpython3u AS $py$
#@pxt
return srv.tables.manage(name)
$py$;
COMMENT ON FUNCTION pxt.manage(text) IS 'Adopt an existing table (made with plain DDL) as a managed table';

CREATE OR REPLACE FUNCTION pxt._add_computed_column(tbl text, name text, expr text, on_error text, if_exists text,
    mode text, destination text) RETURNS text LANGUAGE plpython3u AS $py$
#@pxt
return srv.tables.add_computed_column(tbl, name, expr, on_error, if_exists, mode, destination)
$py$;

CREATE OR REPLACE FUNCTION pxt.add_computed_column(tbl text, name text, expr text,
    on_error text DEFAULT 'abort', if_exists text DEFAULT 'error', mode text DEFAULT 'eager',
    destination text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE col text := pxt._add_computed_column(tbl, name, expr, on_error, if_exists, mode, destination);
BEGIN
    IF mode OPERATOR(pg_catalog.=) 'eager' THEN
        PERFORM pxt.recompute_columns(tbl, ARRAY[col], false);
    END IF;
    RETURN col;
END $$;
COMMENT ON FUNCTION pxt.add_computed_column(text, text, text, text, text, text, text) IS
  'Add a column computed from expr (SQL over the table''s columns) on insert and update; backfills existing rows. mode => ''deferred'' leaves cells pending for pxt.process_pending / pixelgres worker; destination => ''s3://bucket/prefix/'' puts produced media in a bucket';

CREATE OR REPLACE FUNCTION pxt.set_media_validation(tbl text, name text, mode text) RETURNS text
LANGUAGE plpython3u AS $py$
#@pxt
return srv.tables.set_media_validation(tbl, name, mode)
$py$;
COMMENT ON FUNCTION pxt.set_media_validation(text, text, text) IS
  'When a media input column checks its values: ''on_write'' (default: the insert opens each file, a bad one is an error naming the row) or ''on_read'' (no check on insert; the first read reports a bad file), for very large remote media';

CREATE OR REPLACE FUNCTION pxt.status(tbl text DEFAULT NULL)
RETURNS TABLE ("table" text, "column" text, mode text, pending bigint, computed bigint, errors bigint)
LANGUAGE plpython3u AS $py$
#@pxt
return srv.tables.status(tbl)
$py$;
COMMENT ON FUNCTION pxt.status(text) IS 'Exact pending / computed / error counts of every computed column';

CREATE OR REPLACE FUNCTION pxt._deferred_columns(tbl text) RETURNS TABLE (relid regclass, name name)
LANGUAGE plpython3u AS $py$
#@pxt
oid = srv.catalog.managed(tbl) if tbl is not None else None
return plpy.execute(plpy.prepare(
    "SELECT relid, name FROM pxt.column_defs WHERE deferred AND dropped_at IS NULL AND ($1::oid IS NULL OR relid = $1) "
    "ORDER BY relid, position", ["oid"]), [oid])
$py$;

-- Fill pending cells of deferred columns, batch_size rows at a time, committing after each
-- batch. Rows are claimed with FOR UPDATE SKIP LOCKED, so several workers share the work.
-- Each call sweeps each column once in rowid order (a cell whose value is NULL is not
-- retried within the call). Returns through a NOTICE how many cells it processed.
CREATE OR REPLACE PROCEDURE pxt.process_pending(tbl text DEFAULT NULL, batch_size integer DEFAULT 100,
                                                max_batches integer DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    cols regclass[]; names name[];
    i integer; ids bigint[]; last_id bigint; total bigint := 0; batches integer := 0;
    pending bigint; done bigint; errors bigint; n bigint; ahead bigint;
BEGIN
    SELECT pg_catalog.array_agg(d.relid), pg_catalog.array_agg(d.name) INTO cols, names
        FROM pxt._deferred_columns(tbl) d;
    IF cols IS NULL THEN RETURN; END IF;
    FOR i IN 1 .. pg_catalog.array_length(cols, 1) LOOP
        last_id := 0; done := 0; errors := 0;
        -- what this sweep has ahead of it, for progress reports (rows added meanwhile are extra)
        EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM ONLY %s WHERE %I IS NULL '
                                  'AND NOT coalesce(_pxt_errors OPERATOR(pg_catalog.?) %L, false)',
                                  cols[i], names[i], names[i]) INTO pending;
        LOOP
            EXIT WHEN max_batches IS NOT NULL AND batches OPERATOR(pg_catalog.>=) max_batches;
            EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(_pxt_rowid ORDER BY _pxt_rowid) '
                           'FROM (SELECT _pxt_rowid FROM ONLY %s '
                           'WHERE _pxt_rowid OPERATOR(pg_catalog.>) $1 AND %I IS NULL '
                           'AND NOT coalesce(_pxt_errors OPERATOR(pg_catalog.?) %L, false) '
                           'ORDER BY _pxt_rowid LIMIT %s FOR UPDATE SKIP LOCKED) s',
                           cols[i], names[i], names[i], batch_size) USING last_id INTO ids;
            EXIT WHEN ids IS NULL;
            PERFORM pg_catalog.set_config('pixelgres.recompute', names[i], true);
            EXECUTE pg_catalog.format('UPDATE ONLY %s SET %I = %I WHERE _pxt_rowid OPERATOR(pg_catalog.=) ANY($1)',
                                      cols[i], names[i], names[i])
                USING ids;
            PERFORM pg_catalog.set_config('pixelgres.recompute', '', true);
            EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM ONLY %s WHERE _pxt_rowid OPERATOR(pg_catalog.=) ANY($1) '
                                      'AND coalesce(_pxt_errors OPERATOR(pg_catalog.?) %L, false)', cols[i], names[i])
                USING ids INTO n;
            errors := errors OPERATOR(pg_catalog.+) n;
            done := done OPERATOR(pg_catalog.+) pg_catalog.array_length(ids, 1);
            total := total OPERATOR(pg_catalog.+) pg_catalog.array_length(ids, 1);
            last_id := ids[pg_catalog.array_length(ids, 1)];
            batches := batches OPERATOR(pg_catalog.+) 1;
            ahead := CASE WHEN pending OPERATOR(pg_catalog.>) done THEN pending ELSE done END;
            -- one report per batch: psql shows the message, clients (pixelgres worker, the
            -- notebook's bar) read the DETAIL
            RAISE NOTICE USING MESSAGE = pg_catalog.format('pixelgres: computing pending %s of %s: %s of %s rows, %s errors',
                    names[i], pxt._display(cols[i]), done, ahead, errors),
                DETAIL = pg_catalog.jsonb_build_object('pixelgres_progress', pg_catalog.jsonb_build_object(
                    'op', 'process_pending', 'table', pxt._display(cols[i]), 'columns', ARRAY[names[i]],
                    'done', done, 'total', ahead, 'errors', errors))::pg_catalog.text;
            COMMIT;
        END LOOP;
    END LOOP;
    RAISE NOTICE USING MESSAGE = pg_catalog.format('pixelgres: processed %s pending cells', total),
        DETAIL = pg_catalog.jsonb_build_object('pixelgres_progress', pg_catalog.jsonb_build_object(
            'op', 'process_pending', 'done', total, 'total', total))::pg_catalog.text;
END $$;

CREATE OR REPLACE FUNCTION pxt._alter_computed_column(tbl text, name text, expr text, on_error text)
RETURNS text LANGUAGE plpython3u AS $py$
#@pxt
return srv.tables.alter_computed_column(tbl, name, expr, on_error)
$py$;

CREATE OR REPLACE FUNCTION pxt.alter_computed_column(tbl text, name text, expr text, on_error text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE col text := pxt._alter_computed_column(tbl, name, expr, on_error);
BEGIN
    PERFORM pxt.recompute_columns(tbl, ARRAY[col], false);
    RETURN col;
END $$;
COMMENT ON FUNCTION pxt.alter_computed_column(text, text, text, text) IS
  'Replace a computed column''s expression (same type); recomputes only it and what depends on it';

CREATE OR REPLACE FUNCTION pxt.drop_column(tbl text, name text) RETURNS void LANGUAGE plpython3u AS $py$
#@pxt
srv.tables.drop_column(tbl, name)
$py$;

CREATE OR REPLACE FUNCTION pxt._check_recompute(tbl text, columns text[]) RETURNS regclass
LANGUAGE plpython3u AS $py$
#@pxt
return srv.tables.check_recompute(srv.catalog.managed(tbl), list(columns or []))
$py$;

-- Set-based: one UPDATE per chunk of rowids (progress as NOTICEs on large tables); the row
-- trigger recomputes the columns named in pixelgres.recompute and everything downstream,
-- the statement trigger the batched ones.
CREATE OR REPLACE FUNCTION pxt.recompute_columns(tbl text, columns text[], errors_only boolean DEFAULT false)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    rel regclass := pxt._check_recompute(tbl, columns);
    lo bigint; hi bigint; total bigint; done bigint := 0; n bigint; errors bigint := 0;
    chunk constant bigint := 5000;
BEGIN
    EXECUTE pg_catalog.format('SELECT pg_catalog.min(_pxt_rowid), pg_catalog.max(_pxt_rowid), pg_catalog.count(*) '
                              'FROM ONLY %s', rel) INTO lo, hi, total;
    IF total OPERATOR(pg_catalog.=) 0 THEN RETURN 0; END IF;
    PERFORM pg_catalog.set_config('pixelgres.recompute', pg_catalog.array_to_string(columns, ','), true);
    WHILE lo OPERATOR(pg_catalog.<=) hi LOOP
        EXECUTE pg_catalog.format('UPDATE ONLY %s SET %I = %I '
                                  'WHERE _pxt_rowid OPERATOR(pg_catalog.>=) $1 AND _pxt_rowid OPERATOR(pg_catalog.<=) $2 %s',
                                  rel, columns[1], columns[1],
                                  CASE WHEN errors_only THEN 'AND _pxt_errors OPERATOR(pg_catalog.?|) $3' ELSE '' END)
            USING lo, lo OPERATOR(pg_catalog.+) (chunk OPERATOR(pg_catalog.-) 1), columns;
        GET DIAGNOSTICS n = ROW_COUNT;
        done := done OPERATOR(pg_catalog.+) n;
        lo := lo OPERATOR(pg_catalog.+) chunk;
        IF total OPERATOR(pg_catalog.>) chunk THEN
            EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM ONLY %s WHERE _pxt_rowid OPERATOR(pg_catalog.>=) $1 '
                                      'AND _pxt_rowid OPERATOR(pg_catalog.<) $2 AND _pxt_errors OPERATOR(pg_catalog.?|) $3', rel)
                USING lo OPERATOR(pg_catalog.-) chunk, lo, columns INTO n;
            errors := errors OPERATOR(pg_catalog.+) n;
            -- the DETAIL is the machine-readable form clients parse (docs: progress)
            RAISE NOTICE USING MESSAGE = pg_catalog.format('pixelgres: computing %s of %s: %s of %s rows, %s errors',
                    pg_catalog.array_to_string(columns, ', '), pxt._display(rel), done, total, errors),
                DETAIL = pg_catalog.jsonb_build_object('pixelgres_progress', pg_catalog.jsonb_build_object(
                    'op', 'recompute', 'table', pxt._display(rel), 'columns', columns, 'done', done, 'total', total,
                    'errors', errors))::pg_catalog.text;
        END IF;
    END LOOP;
    PERFORM pg_catalog.set_config('pixelgres.recompute', '', true);
    RETURN done;
END $$;
COMMENT ON FUNCTION pxt.recompute_columns(text, text[], boolean) IS
  'Recompute computed columns (and their dependents) over existing rows; errors_only => only cells that failed';

CREATE OR REPLACE FUNCTION pxt._defer_recompute(tbl text, col text) RETURNS regclass
LANGUAGE plpython3u AS $py$
#@pxt
return srv.tables.defer_recompute(tbl, col)
$py$;

-- mode => 'deferred': the cells become pending (NULL, errors cleared) for pxt.process_pending and
-- pixelgres worker (--ray); pxt_work.defer tells the triggers to clear without computing.
CREATE OR REPLACE FUNCTION pxt.recompute_column(tbl text, col text, mode text DEFAULT 'eager',
                                                errors_only boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    IF mode OPERATOR(pg_catalog.=) 'eager' THEN
        RETURN pxt.recompute_columns(tbl, ARRAY[col], errors_only);
    ELSIF mode OPERATOR(pg_catalog.<>) 'deferred' OR mode IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('mode must be ''eager'' or ''deferred'', not %L', mode);
    END IF;
    PERFORM pxt._defer_recompute(tbl, col);
    PERFORM pg_catalog.set_config('pxt_work.defer', 'on', true);
    n := pxt.recompute_columns(tbl, ARRAY[col], errors_only);
    PERFORM pg_catalog.set_config('pxt_work.defer', '', true);
    RETURN n;
END $$;
COMMENT ON FUNCTION pxt.recompute_column(text, text, text, boolean) IS
  'Recompute one computed column over existing rows: mode => ''eager'' now, ''deferred'' marks its cells pending for workers (pixelgres worker --ray)';

CREATE OR REPLACE FUNCTION pxt.columns(tbl text)
RETURNS TABLE (name name, type text, media_type text, is_computed boolean, expr text, expr_sql text,
               depends_on name[], on_error text, batched boolean)
LANGUAGE plpython3u AS $py$
#@pxt
return srv.tables.columns(tbl)
$py$;

CREATE OR REPLACE FUNCTION pxt.errors(tbl text)
RETURNS TABLE (rowid bigint, "column" text, error_type text, message text, sqlstate text)
LANGUAGE plpython3u AS $py$
#@pxt
return srv.tables.errors(tbl)
$py$;
COMMENT ON FUNCTION pxt.errors(text) IS 'Per-cell errors recorded by computed columns with on_error => ''ignore''';

-- errors ---------------------------------------------------------------------------------
-- PL/Python prefixes messages with the exception class ("plpy.Error: ..."); users want the cause.
-- These two run only in the generated triggers' exception handlers (never per row of a query),
-- so the pinned path, which keeps them from being inlined, costs nothing that matters.
CREATE OR REPLACE FUNCTION pxt._clean_error(msg text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT regexp_replace(msg, '^plpy\.(Error|Fatal): ', '') $$;

CREATE OR REPLACE FUNCTION pxt._error_info(state text, msg text) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_object(
        'type', coalesce(substring(pxt._clean_error(msg) FROM '^([A-Za-z_][A-Za-z0-9_.]*(?:Error|Exception|Timeout|Refused)):'),
                         'SQLSTATE ' || state),
        'message', pxt._clean_error(msg),
        'sqlstate', state)
$$;

-- batched evaluation ------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION pxt._batch_begin() RETURNS void LANGUAGE plpython3u AS $py$
#@pxt
srv.batch.begin()
$py$;
CREATE OR REPLACE FUNCTION pxt._batch_run() RETURNS integer LANGUAGE plpython3u AS $py$
#@pxt
return srv.batch.run()
$py$;
CREATE OR REPLACE FUNCTION pxt._batch_end() RETURNS void LANGUAGE plpython3u AS $py$
#@pxt
srv.batch.end()
$py$;

-- keeping the catalog in step with plain DDL --------------------------------------------------
CREATE OR REPLACE FUNCTION pxt._on_ddl() RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
    IF current_setting('pxt_v.in_sync', true) = 'on' THEN RETURN; END IF;  -- our own DDL
    FOR r IN SELECT DISTINCT objid FROM pg_event_trigger_ddl_commands()
             WHERE command_tag = 'ALTER TABLE' AND objid IN (SELECT relid FROM pxt.tables) LOOP
        -- only when the columns changed (not for constraints, owners... nor during a restore,
        -- whose generated objects come from the dump)
        IF EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = r.objid AND a.attnum > 0 AND NOT a.attisdropped
                     AND a.attname NOT LIKE '\_pxt\_%'
                     AND NOT EXISTS (SELECT 1 FROM pxt.column_defs d WHERE d.relid = r.objid AND d.attnum = a.attnum
                                       AND (d.dropped_at IS NOT NULL OR (d.name = a.attname
                                            AND d.col_type = format_type(a.atttypid, a.atttypmod)))))
           OR EXISTS (SELECT 1 FROM pxt.column_defs d WHERE d.relid = r.objid AND NOT EXISTS (
                     SELECT 1 FROM pg_attribute a WHERE a.attrelid = r.objid AND a.attnum = d.attnum AND NOT a.attisdropped))
        THEN
            PERFORM pxt._sync(r.objid);
        END IF;
    END LOOP;
END $$;

-- The catalog rows of relations a DROP removed. Row-level security lets a role change only the
-- rows of relations it owns, and a dropped relation has no owner left to check, so this runs as
-- the extension's owner; it can only remove rows of what pg_event_trigger_dropped_objects()
-- reports (it fails outside a sql_drop event trigger). Deleting from pxt.tables cascades to
-- column_defs, versions, embedding_indexes and iterator_views.
CREATE OR REPLACE FUNCTION pxt._forget_dropped() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM pxt.tables WHERE relid::oid IN
        (SELECT objid FROM pg_event_trigger_dropped_objects() WHERE object_type IN ('table', 'view'));
END $$;

CREATE OR REPLACE FUNCTION pxt._on_drop() RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record; fn text;
BEGIN
    -- a plain DROP COLUMN would lose the values that time travel and revert need
    IF coalesce(current_setting('pxt_v.no_log', true), '') <> 'on' AND EXISTS (
        SELECT 1 FROM pg_event_trigger_dropped_objects() d
        WHERE d.object_type = 'table column' AND d.objid IN (SELECT relid FROM pxt.tables WHERE kind <> 'snapshot')
          AND NOT EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() d2
                          WHERE d2.object_type = 'table' AND d2.objid = d.objid)) THEN
        RAISE EXCEPTION 'columns of managed tables are dropped with pxt.drop_column (it keeps their history)'
            USING ERRCODE = '0A000';
    END IF;
    -- a snapshot's overlay (rows it took over from reverted versions) goes with it
    FOR r IN SELECT t.vkey FROM pg_event_trigger_dropped_objects() d
             JOIN pxt.tables t ON t.relid::oid = d.objid WHERE d.object_type = 'view' AND t.kind = 'snapshot' LOOP
        IF to_regclass(format('pxt_internal.%I', 'snap_' || r.vkey)) IS NOT NULL THEN
            EXECUTE format('DROP TABLE pxt_internal.%I', 'snap_' || r.vkey);
        END IF;
    END LOOP;
    -- a dropped face (DROP VIEW, DROP TABLE through extension/faces.c, DROP SCHEMA) takes its
    -- storage along; one a column drop cascaded to is made again (server/faces.py)
    IF EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() d JOIN pxt.tables t ON t.face::oid = d.objid
               WHERE d.object_type = 'view') THEN
        PERFORM pxt._faces_dropped(
            (SELECT jsonb_object_agg(d.objid::text, format('%I.%I', d.schema_name, d.object_name))
             FROM pg_event_trigger_dropped_objects() d WHERE d.object_type = 'view'),
            ARRAY(SELECT d.objid FROM pg_event_trigger_dropped_objects() d WHERE d.object_type = 'table column'));
    END IF;
    FOR r IN SELECT t.relid::oid AS objid, t.vkey FROM pg_event_trigger_dropped_objects() d
             JOIN pxt.tables t ON t.relid::oid = d.objid WHERE d.object_type = 'table' LOOP
        FOREACH fn IN ARRAY ARRAY['row_', 'stmt_', 'ver_'] LOOP  -- its generated trigger functions
            IF to_regprocedure(format('pxt_internal.%I()', fn || r.vkey)) IS NOT NULL THEN
                EXECUTE format('DROP FUNCTION pxt_internal.%I()', fn || r.vkey);
            END IF;
        END LOOP;
        IF to_regclass(format('pxt_internal.%I', 'hist_' || r.vkey)) IS NOT NULL THEN
            EXECUTE format('DROP TABLE pxt_internal.%I CASCADE', 'hist_' || r.vkey);
        END IF;
    END LOOP;
    PERFORM pxt._forget_dropped();
END $$;

CREATE OR REPLACE FUNCTION pxt._faces_dropped(faces jsonb, column_of oid[]) RETURNS void LANGUAGE plpython3u AS $py$
#@pxt
import json
srv.faces.dropped({int(k): v for k, v in json.loads(faces).items()}, set(column_of or []))
$py$;

CREATE OR REPLACE FUNCTION pxt._sync(rel oid) RETURNS void LANGUAGE plpython3u AS $py$
#@pxt
srv.tables.sync(rel)
$py$;
