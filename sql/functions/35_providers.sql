-- Hosted model providers besides OpenAI, each through its official client (declared in
-- 35_providers.toml; the work is in pixelgres.server.ai.providers). Batched, cached,
-- retried and rate-limited exactly as the OpenAI functions (30_openai.sql), whose notes on
-- pgvector's schema apply to the functions that return `vector`.
DO $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', pg_catalog.format('pg_catalog, %I, pg_temp', n.nspname), true)
        FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
        WHERE e.extname OPERATOR(pg_catalog.=) 'vector';
END $$;

-- @registry
SET LOCAL search_path TO pg_catalog, pg_temp;  -- pinned again (see 30_openai.sql)
