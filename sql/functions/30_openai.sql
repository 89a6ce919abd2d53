-- OpenAI-compatible remote functions, declared in 30_openai.toml (logic in
-- pixelgres.server.ai.openai_fns). Both are batched:
-- in a computed column, one statement's rows are sent together, concurrently, with rate
-- limits, retries and the result cache. Endpoint: pixelgres.openai_base_url (else the
-- server's OPENAI_BASE_URL, else api.openai.com); key: pixelgres.openai_api_key (else the
-- server's OPENAI_API_KEY). Never pass a key as an argument: it would be stored with the
-- column's expression.

-- `vector` is pgvector's type, in whatever schema pgvector was installed into (often public),
-- and PostgreSQL 15 has no @extschema:vector@ to name it. The script runs with only pg_catalog
-- on the search path (extension/build_sql.py), so the statements that name `vector` put that
-- schema, looked up in pg_extension, after pg_catalog for themselves, and the pinned path is
-- restored right after them. Only type names are resolved in between (signatures of
-- plpython3u functions and their comments): pg_catalog still comes first, so nothing but
-- `vector` can come from pgvector's schema. pgspot treats the path as untrusted from the
-- set_config to the SET (hence the qualified names in the DO block itself), so it checks that
-- nothing else in between depends on it. 40_embeddings.sql does the same.
DO $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', pg_catalog.format('pg_catalog, %I, pg_temp', n.nspname), true)
        FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
        WHERE e.extname OPERATOR(pg_catalog.=) 'vector';
END $$;

-- @registry
SET LOCAL search_path TO pg_catalog, pg_temp;  -- pinned again (see above)

CREATE OR REPLACE FUNCTION pxt.vacuum_cache(older_than interval DEFAULT NULL, func text DEFAULT NULL)
RETURNS bigint LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH gone AS (
        DELETE FROM pxt.ai_cache c
        WHERE (older_than IS NULL OR coalesce(c.last_hit_at, c.created_at) < now() - older_than)
          AND (vacuum_cache.func IS NULL OR c.func = vacuum_cache.func)
        RETURNING 1)
    SELECT count(*) FROM gone
$$;
COMMENT ON FUNCTION pxt.vacuum_cache(interval, text) IS
  'Delete cached AI results (yours; a superuser''s: everyone''s) not used within older_than (NULL: all); returns how many';
