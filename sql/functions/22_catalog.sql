-- The catalog API: what pixelgres knows about its tables, for SQL users, BI tools and the
-- Python client alike (the client reads nothing else). Names are parsed like every pxt.*
-- function's: 'images', 'ml.images', '"My Dir"."My Table"'; an unqualified name is in public.

CREATE OR REPLACE FUNCTION pxt._relation(name text) RETURNS regclass
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE parts text[];
BEGIN
    BEGIN
        parts := parse_ident(name);
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('invalid table name %L: %s', name, SQLERRM);
    END;
    IF array_length(parts, 1) = 1 THEN
        RETURN to_regclass(format('public.%I', parts[1]));
    ELSIF array_length(parts, 1) = 2 THEN
        RETURN to_regclass(format('%I.%I', parts[1], parts[2]));
    END IF;
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('invalid table name %L: expected table or schema.table', name);
END $$;
COMMENT ON FUNCTION pxt._relation(text) IS 'The relation a user-supplied table name means (public when unqualified), or NULL';

CREATE OR REPLACE FUNCTION pxt._display(rel regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT t.face::text FROM pxt.tables t WHERE t.relid = rel), rel::text)
$$;
COMMENT ON FUNCTION pxt._display(regclass) IS 'A managed table''s name as users write it: its face''s (server/faces.py), else its own';

CREATE OR REPLACE FUNCTION pxt.internal_relation(tbl text) RETURNS regclass
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(
        (SELECT t.relid FROM pxt.tables t WHERE t.face = pxt._relation(tbl)),
        (SELECT to_regclass(format('pxt_internal.%I', 'rows_' || t.vkey))
         FROM pxt.iterator_views v JOIN pxt.tables t ON t.relid = v.storage WHERE v.view_rel = pxt._relation(tbl)),
        pxt._relation(tbl))
$$;
COMMENT ON FUNCTION pxt.internal_relation(text) IS
  'The relation holding a table''s or iterator view''s rows with the bookkeeping columns (_pxt_rowid, _pxt_errors, ...) '
  'that its name leaves out: a table''s storage, an iterator view''s joined rows; other relations themselves';

CREATE OR REPLACE FUNCTION pxt.list_tables()
RETURNS TABLE (name text, kind text, version integer, created_at timestamptz, "schema" name, relname name,
               storage regclass, base regclass)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('%I.%I', coalesce(v.view_schema, n.nspname), coalesce(v.view_name, c.relname)), t.kind, t.version,
           t.created_at, coalesce(v.view_schema, n.nspname), coalesce(v.view_name, c.relname), t.relid,
           coalesce(b.face, t.base)
    FROM pxt.tables t
    LEFT JOIN pxt.tables b ON b.relid = t.base
    JOIN pg_class c ON c.oid = coalesce(t.face, t.relid)  -- a table by its face's name (server/faces.py)
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pxt.iterator_views v ON v.storage = t.relid
    WHERE n.nspname NOT LIKE 'pg\_temp%'
    ORDER BY 5, 6
$$;
COMMENT ON FUNCTION pxt.list_tables() IS
  'Managed tables, iterator views (by the name users query) and snapshots: kind, current version, storage and base';

CREATE OR REPLACE FUNCTION pxt.table_kind(tbl text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE rel regclass := pxt._relation(tbl); k text;
BEGIN
    IF rel IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT t.kind INTO k FROM pxt.tables t WHERE t.relid = rel OR t.face = rel;
    IF k IS NULL AND EXISTS (SELECT 1 FROM pxt.iterator_views v WHERE v.view_rel = rel) THEN
        k := 'view';
    END IF;
    IF k IS NULL THEN
        SELECT CASE WHEN c.relkind IN ('v', 'm') THEN 'view' ELSE 'unmanaged' END INTO k FROM pg_class c WHERE c.oid = rel;
    END IF;
    RETURN k;
END $$;
COMMENT ON FUNCTION pxt.table_kind(text) IS
  'table, view (iterator view or any other view), snapshot, or unmanaged (a table pxt.manage() could adopt); NULL when nothing has that name';

-- Not pinned (tests/test_pgspot.py: UNPINNED): format_type names a type as the caller's
-- search_path sees it ('vector(3)', not 'public.vector(3)'), as psql's \d does; every
-- reference in the body is qualified instead.
CREATE OR REPLACE FUNCTION pxt.describe(tbl text)
RETURNS TABLE (name name, type text, media_type text, is_computed boolean, expr text, is_system boolean)
LANGUAGE sql STABLE AS $$
    SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
           CASE WHEN tn.nspname OPERATOR(pg_catalog.=) 'pxt'
                 AND t.typname OPERATOR(pg_catalog.=) ANY ('{image,video,audio,document}'::pg_catalog.name[])
                THEN t.typname::pg_catalog.text END,
           d.expr IS NOT NULL, d.expr, a.attname OPERATOR(pg_catalog.~~) '\_pxt\_%'
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
    JOIN pg_catalog.pg_namespace tn ON tn.oid OPERATOR(pg_catalog.=) t.typnamespace
    LEFT JOIN pxt.column_defs d ON d.relid OPERATOR(pg_catalog.=) a.attrelid
         AND d.attnum OPERATOR(pg_catalog.=) a.attnum AND d.dropped_at IS NULL
    WHERE a.attrelid OPERATOR(pg_catalog.=) pxt.internal_relation($1)  -- the bookkeeping columns too
      AND a.attnum OPERATOR(pg_catalog.>) 0
      AND NOT a.attisdropped
    ORDER BY a.attnum
$$;
COMMENT ON FUNCTION pxt.describe(text) IS
  'Every column of a table, view, snapshot or past version (pxt.at_version) in order: type, media type, '
  'expression of computed columns; is_system marks pixelgres''s bookkeeping columns (_pxt_*)';

CREATE OR REPLACE FUNCTION pxt.list_dirs() RETURNS SETOF name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT nspname FROM pg_namespace
    WHERE nspname NOT LIKE 'pg\_%' AND nspname NOT IN ('pxt', 'pxt_internal', 'information_schema')
    ORDER BY 1
$$;
COMMENT ON FUNCTION pxt.list_dirs() IS 'Directories in the Pixeltable sense: the schemas that can hold tables';

CREATE OR REPLACE FUNCTION pxt.media_readable(refs text[]) RETURNS boolean[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE r text; res boolean[] := '{}';
BEGIN
    FOREACH r IN ARRAY coalesce(refs, '{}') LOOP
        BEGIN
            PERFORM pxt.media_path(r);
            res := res || true;
        EXCEPTION WHEN OTHERS THEN
            res := res || false;
        END;
    END LOOP;
    RETURN res;
END $$;
COMMENT ON FUNCTION pxt.media_readable(text[]) IS
  'For each media reference: can the server read it (under pixelgres.allowed_roots, an URL it may fetch, a store file)?';
