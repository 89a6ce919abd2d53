-- Run once (0.2.0). A managed table's rows live in its storage, pxt_data."<schema>.<table>", with
-- pixelgres's bookkeeping columns (_pxt_rowid, _pxt_errors, _pxt_v); the table's name is its
-- face, a view of the user's columns only that passes INSERT/UPDATE/DELETE through
-- (server/faces.py; extension/faces.c points DDL, COPY and TRUNCATE on the face at the storage).
-- Existing tables get their face at the end of the upgrade (sql/functions/95_faces.sql).
CREATE SCHEMA pxt_data;
GRANT USAGE, CREATE ON SCHEMA pxt_data TO PUBLIC;  -- tables move here as their creators (names are random keys)
ALTER TABLE pxt.tables ADD COLUMN face regclass UNIQUE;  -- the view with the table's name (kind 'table')
