-- Media store and image functions, declared in 10_media.toml (the work is in
-- pixelgres.server.media); a bad media value or argument becomes a clear SQL error.

CREATE OR REPLACE FUNCTION pxt._media_dir() RETURNS text
    AS 'MODULE_PATHNAME', 'pxt_media_dir' LANGUAGE C STRICT;

-- @registry

-- Around every INSERT and UPDATE of a table with a destination column (ddl.triggers): uploads
-- of one statement run concurrently and are all finished, or the statement fails, before it
-- ends (pixelgres.server.media.uploads).
CREATE OR REPLACE FUNCTION pxt._media_uploads() RETURNS trigger LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.server.core.errors import guard
from pixelgres.server.media import uploads
guard(uploads.trigger, TD)
return None
$py$;
