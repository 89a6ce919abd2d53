-- Embedding functions and embedding indexes, declared in 40_embeddings.toml (the work is in
-- pixelgres.server.ai: embedding_models, embedding_index; user docs in docs/embeddings.md).

-- pgvector's schema on the search path, after pg_catalog, for the statements that name `vector`
-- (the generated functions; see 30_openai.sql)
DO $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', pg_catalog.format('pg_catalog, %I, pg_temp', n.nspname), true)
        FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
        WHERE e.extname OPERATOR(pg_catalog.=) 'vector';
END $$;

-- @registry
SET LOCAL search_path TO pg_catalog, pg_temp;  -- pinned again

-- keeping the catalog in step with plain DDL: a dropped vector column ends its index; a dropped
-- HNSW index leaves the embedding column (searches become exact scans)
CREATE OR REPLACE FUNCTION pxt._embedding_on_drop() RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT objid, objsubid, object_type FROM pg_event_trigger_dropped_objects()
             WHERE object_type IN ('table column', 'index') LOOP
        IF r.object_type = 'table column' THEN
            DELETE FROM pxt.embedding_indexes WHERE relid = r.objid::regclass AND vector_attnum = r.objsubid;
        ELSE
            UPDATE pxt.embedding_indexes SET index_rel = NULL WHERE index_rel = r.objid::regclass;
        END IF;
    END LOOP;
END $$;
