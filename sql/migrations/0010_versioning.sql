-- Run once: the version log. One row per version of each managed table: data versions
-- (one per data-changing statement) carry row counts; schema versions carry the change and
-- the column list after it (time travel reads the schema of a version from here).
CREATE TABLE pxt.versions (
    relid         regclass NOT NULL REFERENCES pxt.tables ON DELETE CASCADE,
    version       integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by    name NOT NULL DEFAULT current_user,
    change_type   text NOT NULL CHECK (change_type IN ('data', 'schema')),
    inserts       bigint NOT NULL DEFAULT 0,
    updates       bigint NOT NULL DEFAULT 0,
    deletes       bigint NOT NULL DEFAULT 0,
    errors        bigint NOT NULL DEFAULT 0,
    schema_change jsonb,   -- what changed: {"op": "add_column", "column": ..., ...}
    schema        jsonb,   -- schema versions: [{"attnum", "name", "type"}] after the change
    caused_by     integer, -- views: the version of the base table whose statement wrote this one
    PRIMARY KEY (relid, version)
);
COMMENT ON TABLE pxt.versions IS 'pixelgres: version log of managed tables (see pxt.history)';
SELECT pg_catalog.pg_extension_config_dump('pxt.versions', '');
