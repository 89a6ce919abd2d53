-- Iterators (set-returning functions usable on their own, declared in 50_iterators.toml; the
-- work is in pixelgres.server.media) and iterator views kept in step with their base tables
-- (pixelgres.server.iterators.views).

-- @registry

-- views ------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION pxt.create_view(name text, base text, iterator text, if_exists text DEFAULT 'error',
    comment text DEFAULT NULL) RETURNS regclass
LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
return _it.create_view(name, base, iterator, if_exists, comment)
$py$;
COMMENT ON FUNCTION pxt.create_view(text, text, text, text, text) IS
  'Create an iterator view: iterator is the call of a set-returning function over the base''s columns, as text, '
  'e.g. ''pxt.frame_iterator(video, fps => 1)''. Rows are stored in <name>_rows; <name> joins them to the base row';

CREATE OR REPLACE FUNCTION pxt.drop_view(name text) RETURNS void
LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
_it.drop_view(name)
$py$;

CREATE OR REPLACE FUNCTION pxt.refresh_view(name text) RETURNS void
LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
s = srv.catalog.iterator_storage(name)
if s is None:
    plpy.error(f"{name!r} is not an iterator view")
_it.sync(s)
$py$;
COMMENT ON FUNCTION pxt.refresh_view(text) IS 'Rebuild an iterator view''s joined relation and maintenance triggers (they follow DDL by themselves)';

CREATE OR REPLACE FUNCTION pxt.views()
RETURNS TABLE (name text, storage regclass, base regclass, iterator text, rows bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT v.* FROM pxt.iterator_views v ORDER BY v.view_schema, v.view_name LOOP
        name := format('%I.%I', r.view_schema, r.view_name);
        storage := r.storage; iterator := r.call;
        base := coalesce((SELECT t.face FROM pxt.tables t WHERE t.relid = r.base), r.base);  -- a table by its name
        EXECUTE format('SELECT count(*) FROM ONLY %s', r.storage) INTO rows;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION pxt.views() IS 'Iterator views: their storage table, base table, iterator and row count';

-- keeping views in step with DDL ---------------------------------------------------------------------
CREATE OR REPLACE FUNCTION pxt._iter_sync(ids oid[]) RETURNS void LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
_it.on_ddl(list(ids or []))
$py$;

CREATE OR REPLACE FUNCTION pxt._iter_dropped(ids oid[], tag text) RETURNS void LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.iterators import views as _it
_it.on_drop(list(ids or []), tag)
$py$;

-- Both return at once when no iterator view is concerned; a role that may not read the
-- catalog owns no iterator view, so its DDL is none of their business either.
CREATE OR REPLACE FUNCTION pxt._iter_on_ddl() RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE ids oid[];
BEGIN
    SELECT array_agg(DISTINCT objid) INTO ids FROM pg_event_trigger_ddl_commands() WHERE objid IS NOT NULL;
    BEGIN
        IF ids IS NULL OR NOT EXISTS (SELECT 1 FROM pxt.iterator_views v WHERE v.storage::oid = ANY(ids)
                                      OR v.base::oid = ANY(ids) OR v.view_rel::oid = ANY(ids)) THEN
            RETURN;
        END IF;
    EXCEPTION WHEN insufficient_privilege THEN RETURN;
    END;
    PERFORM pxt._iter_sync(ids);
END $$;

CREATE OR REPLACE FUNCTION pxt._iter_on_drop() RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE ids oid[];
BEGIN
    SELECT array_agg(objid) INTO ids FROM pg_event_trigger_dropped_objects() WHERE object_type IN ('table', 'view');
    BEGIN
        IF ids IS NULL OR NOT EXISTS (SELECT 1 FROM pxt.iterator_views v WHERE v.storage::oid = ANY(ids)
                OR v.base::oid = ANY(ids) OR v.view_rel::oid = ANY(ids) OR v.iter_view::oid = ANY(ids)) THEN
            RETURN;
        END IF;
    EXCEPTION WHEN insufficient_privilege THEN RETURN;
    END;
    PERFORM pxt._iter_dropped(ids, TG_TAG);
END $$;

-- privileges (roles come from a later migration; granted when they exist)
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pxt_reader') THEN
        GRANT SELECT ON pxt.iterator_views TO pxt_reader;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pxt_user') THEN
        GRANT INSERT, UPDATE, DELETE ON pxt.iterator_views TO pxt_user;
    END IF;
END $$;
