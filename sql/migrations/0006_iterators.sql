-- Run once: the catalog of iterator views, and the event triggers that keep them in step
-- with DDL (their functions are defined in sql/functions/50_iterators.sql, replayed after this).
-- A view's rows live in its storage, an ordinary managed table (pxt.tables kind 'view').
CREATE TABLE pxt.iterator_views (
    storage     regclass PRIMARY KEY REFERENCES pxt.tables ON DELETE CASCADE,
    view_schema name NOT NULL,      -- the joined view users query (storage + base columns)
    view_name   name NOT NULL,
    view_rel    regclass,           -- the same, followed through renames
    base        regclass NOT NULL,  -- the managed table whose rows are expanded
    call        text NOT NULL,      -- the iterator call as given, e.g. pxt.frame_iterator(video, fps => 1)
    iter_view   regclass NOT NULL   -- pxt_internal view: the base through the iterator
);
COMMENT ON TABLE pxt.iterator_views IS 'pixelgres: iterator views (frames, chunks, segments) and their storage tables';
SELECT pg_catalog.pg_extension_config_dump('pxt.iterator_views', '');

CREATE FUNCTION pxt._iter_on_ddl() RETURNS event_trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$ BEGIN END $$;
CREATE FUNCTION pxt._iter_on_drop() RETURNS event_trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$ BEGIN END $$;
-- named to sort before pxt_on_ddl / pxt_on_drop: event triggers fire in name order, and a
-- dropped storage must be cleaned up while pxt.tables still lists it
CREATE EVENT TRIGGER pxt_iter_on_ddl ON ddl_command_end WHEN TAG IN ('ALTER TABLE', 'ALTER VIEW')
    EXECUTE FUNCTION pxt._iter_on_ddl();
CREATE EVENT TRIGGER pxt_iter_on_drop ON sql_drop EXECUTE FUNCTION pxt._iter_on_drop();
