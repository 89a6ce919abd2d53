-- OpenAI-compatible remote functions (logic in pixelgres.server.openai_fns). Both are batched:
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
from pixelgres.server import openai_fns  # registers the batch implementation
if messages is None or model is None:
    return None
return srv.batch.call("openai_chat_completions", (messages, model, temperature, max_tokens, response_format,
                      params, image_max_side, concurrency, timeout, max_retries, use_cache))
$py$;
COMMENT ON FUNCTION pxt.openai_chat_completions(jsonb, text, double precision, integer, jsonb, jsonb, integer,
    integer, double precision, integer, boolean) IS
  'Chat completion from an OpenAI-compatible API: the full response as jsonb. Image parts may be data URIs, URLs or media references (sent as data URIs)';

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
from pixelgres.server import openai_fns  # registers the batch implementation
if input is None or model is None:
    return None
return srv.batch.call("openai_embeddings", (input, model, dimensions, params, concurrency, timeout,
                      max_retries, use_cache))
$py$;
COMMENT ON FUNCTION pxt.openai_embeddings(text, text, integer, jsonb, integer, double precision, integer, boolean) IS
  'Embedding of input from an OpenAI-compatible API (sent in multi-input requests when batched)';

INSERT INTO pxt.batched_functions (func, batch_func) VALUES
  ('pxt.openai_chat_completions(jsonb, text, double precision, integer, jsonb, jsonb, integer, integer, double precision, integer, boolean)',
   'pxt.openai_chat_completions(jsonb, text, double precision, integer, jsonb, jsonb, integer, integer, double precision, integer, boolean)'),
  ('pxt.openai_embeddings(text, text, integer, jsonb, integer, double precision, integer, boolean)',
   'pxt.openai_embeddings(text, text, integer, jsonb, integer, double precision, integer, boolean)')
ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION pxt.vacuum_cache(older_than interval DEFAULT NULL, func text DEFAULT NULL)
RETURNS bigint LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM pxt.ai_cache c
        WHERE (older_than IS NULL OR coalesce(c.last_hit_at, c.created_at) < now() - older_than)
          AND (vacuum_cache.func IS NULL OR c.func = vacuum_cache.func)
        RETURNING 1)
    SELECT count(*) FROM gone
$$;
COMMENT ON FUNCTION pxt.vacuum_cache(interval, text) IS
  'Delete cached AI results (yours; a superuser''s: everyone''s) not used within older_than (NULL: all); returns how many';
