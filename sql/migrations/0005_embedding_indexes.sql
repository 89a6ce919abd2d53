-- Run once: the catalog of embedding indexes. An embedding index is a computed vector column
-- (a row of pxt.column_defs, visible and named) plus an HNSW index on it; this table says which
-- source column it embeds, with which function call, metric and precision. Columns are kept
-- by attnum so renames follow. An index is live while its vector column is a live computed
-- column: a column dropped softly (kept for time travel and revert) hides the index, and a
-- revert that brings the column back brings the index back with it; the event trigger below
-- forgets an index whose vector column is dropped for good.
CREATE TABLE pxt.embedding_indexes (
    relid           regclass NOT NULL REFERENCES pxt.tables ON DELETE CASCADE,
    name            text NOT NULL,      -- the index's name (= its vector column's name when created)
    source_attnum   smallint NOT NULL,  -- the embedded column
    vector_attnum   smallint NOT NULL,  -- the computed vector column
    embedding       text NOT NULL,      -- the call as given, without its input: pxt.e5_small()
    query_embedding text,               -- the call that embeds queries (text), when it differs
    func            regprocedure NOT NULL,
    metric          text NOT NULL CHECK (metric IN ('cosine', 'ip', 'l2')),
    precision       text NOT NULL CHECK (precision IN ('fp32', 'fp16')),
    dims            integer NOT NULL,
    index_rel       regclass,           -- the HNSW index; NULL if dropped by hand (search is then exact)
    params          jsonb NOT NULL DEFAULT '{}',  -- m, ef_construction
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      name NOT NULL DEFAULT current_user,
    PRIMARY KEY (relid, vector_attnum)  -- names are unique among live indexes (checked on creation)
);
CREATE INDEX embedding_indexes_name ON pxt.embedding_indexes (relid, name);
COMMENT ON TABLE pxt.embedding_indexes IS 'pixelgres: embedding indexes (computed vector column + HNSW index)';
SELECT pg_catalog.pg_extension_config_dump('pxt.embedding_indexes', '');

-- replaced by sql/functions/40_embeddings.sql
CREATE FUNCTION pxt._embedding_on_drop() RETURNS event_trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$ BEGIN END $$;
CREATE EVENT TRIGGER pxt_embedding_on_drop ON sql_drop EXECUTE FUNCTION pxt._embedding_on_drop();
