-- Run once (0.2.0).
-- 1. Snapshots survive a revert of the version they show (pixelgres.server.versioning._keep_snapshot):
--    `version` stays the version a snapshot shows; `pins` is the base version whose history it
--    still reads (NULL once it holds all its rows itself). Revert and vacuum_history respect `pins`.
ALTER TABLE pxt.tables ADD COLUMN pins integer;
COMMENT ON COLUMN pxt.tables.pins IS
    'snapshots: the base version whose history they read (NULL: they hold their own rows)';
UPDATE pxt.tables SET pins = version WHERE kind OPERATOR(pg_catalog.=) 'snapshot';
-- pxt.revert(text) gains if_pinned (sql/functions/25_versioning.sql); drop the old signature
-- so that pxt.revert('t') stays unambiguous after an upgrade
DROP FUNCTION IF EXISTS pxt.revert(text);

-- 2. The feature catalogs get the row-level security pxt.tables has (0020_roles.sql): everyone
--    reads them, only the owner of the table a row describes writes it.
ALTER TABLE pxt.embedding_indexes ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON pxt.embedding_indexes FOR SELECT USING (true);
CREATE POLICY own ON pxt.embedding_indexes FOR ALL USING (pxt._owns(relid)) WITH CHECK (pxt._owns(relid));
ALTER TABLE pxt.iterator_views ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON pxt.iterator_views FOR SELECT USING (true);
CREATE POLICY own ON pxt.iterator_views FOR ALL USING (pxt._owns(storage)) WITH CHECK (pxt._owns(storage));
