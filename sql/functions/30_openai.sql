-- OpenAI-compatible remote functions (logic in pixelgres.server.ai.openai_fns). Both are batched:
-- in a computed column, one statement's rows are sent together, concurrently, with rate
-- limits, retries and the result cache. Endpoint: pixelgres.openai_base_url (else the
-- server's OPENAI_BASE_URL, else api.openai.com); key: pixelgres.openai_api_key (else the
-- server's OPENAI_API_KEY). Never pass a key as an argument: it would be stored with the
-- column's expression.

CREATE OR REPLACE FUNCTION pxt.openai_chat_completions(
    messages        jsonb,
    model           text,
    temperature     double precision DEFAULT NULL,
    max_tokens      integer DEFAULT NULL,
    response_format jsonb DEFAULT NULL,
    params          jsonb DEFAULT NULL,      -- any other request fields: {"top_p": 0.9, "seed": 1, ...}
    image_max_side  integer DEFAULT NULL,    -- images larger than this are downscaled (default 2048; 0: never)
    concurrency     integer DEFAULT NULL,    -- requests in flight at once (default 32)
    timeout         double precision DEFAULT NULL,  -- seconds per attempt (default 120)
    max_retries     integer DEFAULT NULL,    -- on 408/409/429/5xx, connection errors, timeouts (default 6)
    use_cache       boolean DEFAULT true)    -- false: neither read nor write pxt.ai_cache
RETURNS jsonb LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.ai import openai_fns  # registers the batch implementation
if messages is None or model is None:
    return None
return srv.batch.call("openai_chat_completions", (messages, model, temperature, max_tokens, response_format,
                      params, image_max_side, concurrency, timeout, max_retries, use_cache))
$py$;
COMMENT ON FUNCTION pxt.openai_chat_completions(jsonb, text, double precision, integer, jsonb, jsonb, integer,
    integer, double precision, integer, boolean) IS
  'Chat completion from an OpenAI-compatible API: the full response as jsonb. Image parts may be data URIs, URLs or media references (sent as data URIs)';

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

CREATE OR REPLACE FUNCTION pxt.openai_embeddings(
    input       text,
    model       text,
    dimensions  integer DEFAULT NULL,
    params      jsonb DEFAULT NULL,
    concurrency integer DEFAULT NULL,
    timeout     double precision DEFAULT NULL,
    max_retries integer DEFAULT NULL,
    use_cache   boolean DEFAULT true)
RETURNS vector LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.ai import openai_fns  # registers the batch implementation
if input is None or model is None:
    return None
return srv.batch.call("openai_embeddings", (input, model, dimensions, params, concurrency, timeout,
                      max_retries, use_cache))
$py$;
COMMENT ON FUNCTION pxt.openai_embeddings(text, text, integer, jsonb, integer, double precision, integer, boolean) IS
  'Embedding of input from an OpenAI-compatible API (sent in multi-input requests when batched)';
SET LOCAL search_path TO pg_catalog, pg_temp;  -- pinned again (see above)

INSERT INTO pxt.batched_functions (func, batch_func) VALUES
  ('pxt.openai_chat_completions(jsonb, text, double precision, integer, jsonb, jsonb, integer, integer, double precision, integer, boolean)',
   'pxt.openai_chat_completions(jsonb, text, double precision, integer, jsonb, jsonb, integer, integer, double precision, integer, boolean)'),
  ('pxt.openai_embeddings(text, text, integer, jsonb, integer, double precision, integer, boolean)',
   'pxt.openai_embeddings(text, text, integer, jsonb, integer, double precision, integer, boolean)')
ON CONFLICT DO NOTHING;

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
