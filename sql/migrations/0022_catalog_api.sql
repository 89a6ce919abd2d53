-- Run once (0.2.0). pxt.list_tables() gains the user-facing schema and name, the storage and
-- the base (sql/functions/22_catalog.sql); a function's result columns cannot change in place.
DROP FUNCTION IF EXISTS pxt.list_tables();
