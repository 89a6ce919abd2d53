-- Run once: the catalog of managed tables and their columns.
-- Marked with pg_extension_config_dump so pg_dump carries the catalog with the data.

-- The schema is created here (not by the control file) so that it belongs to the extension
-- and DROP EXTENSION removes it.
CREATE SCHEMA pxt;
GRANT USAGE ON SCHEMA pxt TO PUBLIC;

CREATE TABLE pxt.tables (
    relid       regclass PRIMARY KEY,
    -- stable key naming the table's generated objects (functions, history table, settings):
    -- unlike the OID it survives pg_dump/restore
    vkey        text NOT NULL UNIQUE DEFAULT ('t' || substr(md5(random()::text || clock_timestamp()::text), 1, 16)),
    kind        text NOT NULL DEFAULT 'table' CHECK (kind IN ('table', 'view', 'snapshot')),
    version     integer NOT NULL DEFAULT 0,   -- latest version (pxt.versions)
    retained_from integer NOT NULL DEFAULT 0, -- oldest version still readable (vacuum_history)
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  name NOT NULL DEFAULT current_user,
    base        regclass,          -- views and snapshots: the table they come from
    iterator    jsonb,             -- views: the iterator and its arguments
    comment     text
);
COMMENT ON TABLE pxt.tables IS 'pixelgres: managed tables, views and snapshots';

CREATE TABLE pxt.column_defs (
    relid       regclass NOT NULL REFERENCES pxt.tables ON DELETE CASCADE,
    name        name NOT NULL,
    attnum      smallint NOT NULL,
    col_type    text NOT NULL,     -- format_type() of the column
    media_type  text CHECK (media_type IN ('image', 'video', 'audio', 'document')),
    expr        text,              -- NULL for input columns; as the user wrote it
    expr_view   regclass,          -- pxt_internal view holding expr: PostgreSQL tracks its
                                   -- dependencies and renames and deparses it canonically
    deps        name[] NOT NULL DEFAULT '{}',  -- columns expr reads
    batched     boolean NOT NULL DEFAULT false, -- expr calls a batched function
    on_error    text NOT NULL DEFAULT 'abort' CHECK (on_error IN ('abort', 'ignore')),
    deferred    boolean NOT NULL DEFAULT false, -- filled by pxt.process_pending / pixelgres worker
    position    integer NOT NULL,  -- evaluation order among computed columns
    dropped_at  integer,           -- soft-dropped at this version (kept for time travel and revert)
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (relid, attnum)
);
CREATE UNIQUE INDEX column_defs_live_name ON pxt.column_defs (relid, name) WHERE dropped_at IS NULL;
COMMENT ON TABLE pxt.column_defs IS 'pixelgres: columns of managed tables; expr is set for computed columns';

-- Functions whose calls are evaluated once per statement over all new rows.
CREATE TABLE pxt.batched_functions (
    func        regprocedure PRIMARY KEY,
    batch_func  regprocedure NOT NULL,  -- takes one array per argument, returns an array
    max_batch   integer NOT NULL DEFAULT 1000
);

-- Generated objects (expression views, trigger functions) live here, out of users' schemas.
CREATE SCHEMA pxt_internal;
GRANT USAGE, CREATE ON SCHEMA pxt_internal TO PUBLIC;
CREATE SEQUENCE pxt_internal.expr_seq;
GRANT USAGE ON SEQUENCE pxt_internal.expr_seq TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pxt_internal.expr_seq', '');  -- restored past used names

SELECT pg_catalog.pg_extension_config_dump('pxt.tables', '');
SELECT pg_catalog.pg_extension_config_dump('pxt.column_defs', '');
