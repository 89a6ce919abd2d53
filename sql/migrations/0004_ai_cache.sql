-- Run once: the result cache of remote AI calls and per-model rate limits
-- (pixelgres.server.openai_fns). Both are dumped with the data (pg_extension_config_dump).

-- One row per successful call: a re-run, a recompute or a delete-and-reinsert of the same
-- input finds its result here instead of paying for the request again. Each role sees and
-- writes only its own entries (row-level security), so one role cannot plant results that
-- another role's computed columns would pick up.
CREATE TABLE pxt.ai_cache (
    owner       name NOT NULL DEFAULT current_user,
    key         text NOT NULL,            -- sha256 of (function, endpoint, model, parameters, input hash)
    func        text NOT NULL,            -- 'chat.completions', 'embeddings'
    model       text NOT NULL,
    params      jsonb NOT NULL DEFAULT '{}', -- endpoint and request options (never the API key)
    input_hash  text NOT NULL,            -- sha256 of the input (messages with images inlined, or text)
    result      jsonb NOT NULL,           -- the response (chat) or base64 float32 vector (embeddings)
    created_at  timestamptz NOT NULL DEFAULT now(),
    hits        bigint NOT NULL DEFAULT 0,
    last_hit_at timestamptz,
    PRIMARY KEY (owner, key)
);
COMMENT ON TABLE pxt.ai_cache IS 'pixelgres: results of remote AI calls (pxt.openai_*), per role; pxt.vacuum_cache() prunes it';
-- Privileges: sql/functions/90_privileges.sql (pxt_reader reads, pxt_user writes).
ALTER TABLE pxt.ai_cache ENABLE ROW LEVEL SECURITY;
CREATE POLICY ai_cache_own ON pxt.ai_cache USING (owner = current_user) WITH CHECK (owner = current_user);

-- Client-side limits per model, applied by each backend to its own requests (on top of what
-- the server's x-ratelimit-* and retry-after headers say). model '*' applies to models
-- without a row of their own.
CREATE TABLE pxt.ai_rate_limits (
    model               text PRIMARY KEY,
    requests_per_minute integer CHECK (requests_per_minute > 0),
    tokens_per_minute   integer CHECK (tokens_per_minute > 0)
);
COMMENT ON TABLE pxt.ai_rate_limits IS 'pixelgres: requests/tokens per minute per model for pxt.openai_* calls (per backend)';

SELECT pg_catalog.pg_extension_config_dump('pxt.ai_cache', '');
SELECT pg_catalog.pg_extension_config_dump('pxt.ai_rate_limits', '');
