-- Run once (functions are defined by the files in sql/functions, replayed after this; event
-- triggers can reference functions created later in the same script only if created after,
-- so this migration only creates placeholders the function files replace).
CREATE FUNCTION pxt._on_ddl() RETURNS event_trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$ BEGIN END $$;
CREATE FUNCTION pxt._on_drop() RETURNS event_trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$ BEGIN END $$;
CREATE EVENT TRIGGER pxt_on_ddl ON ddl_command_end WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION pxt._on_ddl();
CREATE EVENT TRIGGER pxt_on_drop ON sql_drop EXECUTE FUNCTION pxt._on_drop();
