-- Media store and image functions, declared in 10_media.toml (the work is in
-- pixelgres.server.media); a bad media value or argument becomes a clear SQL error.

CREATE OR REPLACE FUNCTION pxt._media_dir() RETURNS text
    AS 'MODULE_PATHNAME', 'pxt_media_dir' LANGUAGE C STRICT;

-- @registry
