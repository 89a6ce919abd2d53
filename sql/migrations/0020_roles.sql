-- Run once: the privilege model (see README "Security").
--   pxt_reader: query managed tables, snapshots, history and the catalog;
--   pxt_user:   + create managed tables, computed columns, indexes, views (with registered
--               functions) and write the tables it owns or is granted;
--   pxt_admin:  + register Python UDFs, vacuum the media store, set allowed roots/hosts.
-- Roles are cluster-wide, so they are created only if missing and survive DROP EXTENSION.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pxt_reader') THEN CREATE ROLE pxt_reader NOLOGIN; END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pxt_user') THEN CREATE ROLE pxt_user NOLOGIN; END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pxt_admin') THEN CREATE ROLE pxt_admin NOLOGIN; END IF;
END $$;
GRANT pxt_reader TO pxt_user;
GRANT pxt_user TO pxt_admin;
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO pxt_user', current_database()); END $$;
GRANT SET ON PARAMETER pixelgres.allowed_roots, pixelgres.allowed_url_hosts, pixelgres.max_image_pixels,
      pixelgres.url_max_bytes, pixelgres.url_timeout_ms, pixelgres.max_media_seconds, pixelgres.max_media_mb,
      pixelgres.max_document_pages TO pxt_admin;

REVOKE CREATE ON SCHEMA pxt_internal FROM PUBLIC;
GRANT CREATE ON SCHEMA pxt_internal TO pxt_user;
REVOKE USAGE ON SEQUENCE pxt_internal.expr_seq FROM PUBLIC;
GRANT USAGE ON SEQUENCE pxt_internal.expr_seq TO pxt_user;

-- The catalog: everyone with a pxt role reads it; a row is written only by the owner of the
-- table it describes (version triggers run as the owner: SECURITY DEFINER).
CREATE FUNCTION pxt._owns(rel regclass) RETURNS boolean LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT coalesce((SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = rel), false) $$;
GRANT SELECT ON pxt.tables, pxt.column_defs, pxt.versions, pxt.batched_functions TO pxt_reader;
-- the event triggers read the catalog for every role's DDL: it is metadata, like pg_class
GRANT SELECT ON pxt.tables, pxt.column_defs TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON pxt.tables, pxt.column_defs, pxt.versions TO pxt_user;
ALTER TABLE pxt.tables ENABLE ROW LEVEL SECURITY;
ALTER TABLE pxt.column_defs ENABLE ROW LEVEL SECURITY;
ALTER TABLE pxt.versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON pxt.tables FOR SELECT USING (true);
CREATE POLICY own ON pxt.tables FOR ALL USING (pxt._owns(relid)) WITH CHECK (pxt._owns(relid));
CREATE POLICY read ON pxt.column_defs FOR SELECT USING (true);
CREATE POLICY own ON pxt.column_defs FOR ALL USING (pxt._owns(relid)) WITH CHECK (pxt._owns(relid));
CREATE POLICY read ON pxt.versions FOR SELECT USING (true);
CREATE POLICY own ON pxt.versions FOR ALL USING (pxt._owns(relid)) WITH CHECK (pxt._owns(relid));
