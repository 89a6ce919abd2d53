-- Replayed last by every install/upgrade: who may execute what (see 0020_roles.sql).
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pxt FROM PUBLIC;
REVOKE EXECUTE ON ALL PROCEDURES IN SCHEMA pxt FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pxt TO pxt_user;
GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA pxt TO pxt_user;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pxt TO pxt_admin;
GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA pxt TO pxt_admin;
DO $$
DECLARE f regprocedure;
BEGIN
    -- event triggers run for everybody's DDL; the internals every caller's code path needs
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'pxt'::regnamespace
             AND (p.prorettype = 'event_trigger'::regtype
                  OR p.proname IN ('_guc_init', '_boot', '_media_dir', '_owns', '_forget_dropped', '_display', 'version',
                                   '_version_of')) LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
    END LOOP;
    -- admin only
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'pxt'::regnamespace
             AND p.proname IN ('vacuum_media', 'server_info', 'register_udf') LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM pxt_user', f);
    END LOOP;
    -- readers: what only reads
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'pxt'::regnamespace
             AND p.proname IN ('history', 'columns', 'errors', 'status', 'list_tables', 'table_kind', 'describe', 'list_dirs',
                               '_relation', 'internal_relation', '_display', 'at_version',
                               'rows_at_version', 'width', 'height', 'mode', 'format', 'image_info',
                               'to_bytes', 'image_url', 'media_url', 'views', 'embedding_indexes', 'embedding_models',
                               'search', 'embed', 'hybrid_search', '_clean_error', '_error_info', '_pending_work') LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pxt_reader', f);
    END LOOP;
END $$;

-- catalog tables of the feature modules (embedding indexes, iterator views, AI cache): read by
-- readers, written by users' DDL and computations. tables/column_defs/versions add row-level
-- security (0020_roles.sql) so only a table's owner changes its rows.
GRANT SELECT ON ALL TABLES IN SCHEMA pxt TO pxt_reader;
GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pxt TO pxt_user;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA pxt TO pxt_user;

-- Every SQL and PL/pgSQL function declares its search_path in its CREATE FUNCTION (SET
-- search_path = pg_catalog, pg_temp; tests/test_pgspot.py checks it), except the four that
-- evaluate users' expressions (sql/functions/20_tables.sql): the pin would apply inside users'
-- own functions. Safety net for what runs for other roles: event triggers (every role's DDL)
-- and SECURITY DEFINER functions get the pin here even if a declaration were missing.
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'pxt'::regnamespace
             AND p.prolang IN (SELECT oid FROM pg_language WHERE lanname IN ('sql', 'plpgsql'))
             AND (p.prorettype = 'event_trigger'::regtype OR p.prosecdef) LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', f);
    END LOOP;
END $$;

-- rate limits protect the shared API budget: admins set them
DO $$ BEGIN
    IF to_regclass('pxt.ai_rate_limits') IS NOT NULL THEN
        REVOKE INSERT, UPDATE, DELETE ON pxt.ai_rate_limits FROM pxt_user;
        GRANT INSERT, UPDATE, DELETE ON pxt.ai_rate_limits TO pxt_admin;
    END IF;
END $$;

-- catalogs that event triggers read for every role's DDL: metadata, like pg_class
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['pxt.embedding_indexes', 'pxt.iterator_views'] LOOP
        IF to_regclass(t) IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON %s TO PUBLIC', t);
        END IF;
    END LOOP;
END $$;
