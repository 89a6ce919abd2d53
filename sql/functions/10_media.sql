-- Media store and image functions. Bodies are thin: the work is in pixelgres.server.media.image
-- and pixelgres.server.media.store; srv.guard turns a bad media value into a clear SQL error.

CREATE OR REPLACE FUNCTION pxt._media_dir() RETURNS text
    AS 'MODULE_PATHNAME', 'pxt_media_dir' LANGUAGE C STRICT;

CREATE OR REPLACE FUNCTION pxt._validate_media(value text, kind text) RETURNS void
LANGUAGE plpython3u AS $py$
#@pxt
srv.guard(srv.validate.media, value, kind)
$py$;

CREATE OR REPLACE FUNCTION pxt.store_media(data bytea, ext text DEFAULT 'bin') RETURNS text
LANGUAGE plpython3u STRICT AS $py$
#@pxt
if not ext.isalnum() or len(ext) > 8:
    plpy.error(f"invalid file extension {ext!r}: letters and digits, at most 8", sqlstate="22023")
return srv.guard(srv.store.store_bytes, data, ext)
$py$;
COMMENT ON FUNCTION pxt.store_media(bytea, text) IS 'Write bytes into the content-addressed media store; returns media://<sha256>.<ext>';

CREATE OR REPLACE FUNCTION pxt.media_path(ref text) RETURNS text
LANGUAGE plpython3u STRICT AS $py$
#@pxt
return srv.guard(srv.resolve.local_path, ref)
$py$;

-- images ------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION pxt.resize(img pxt.image, width integer, height integer) RETURNS pxt.image
LANGUAGE plpython3u STRICT AS $py$
#@pxt
return srv.guard(srv.image.resize, img, width, height)
$py$;

CREATE OR REPLACE FUNCTION pxt.thumbnail(img pxt.image, width integer, height integer) RETURNS pxt.image
LANGUAGE plpython3u STRICT AS $py$
#@pxt
return srv.guard(srv.image.thumbnail, img, width, height)
$py$;
COMMENT ON FUNCTION pxt.thumbnail(pxt.image, integer, integer) IS 'Aspect-preserving downscale to fit within width x height';

CREATE OR REPLACE FUNCTION pxt.crop(img pxt.image, "left" integer, top integer, "right" integer, bottom integer) RETURNS pxt.image
LANGUAGE plpython3u STRICT AS $py$
#@pxt
return srv.guard(srv.image.crop, img, left, top, right, bottom)
$py$;

CREATE OR REPLACE FUNCTION pxt.rotate(img pxt.image, angle double precision, expand boolean DEFAULT false) RETURNS pxt.image
LANGUAGE plpython3u STRICT AS $py$
#@pxt
return srv.guard(srv.image.rotate, img, angle, expand)
$py$;

CREATE OR REPLACE FUNCTION pxt.convert(img pxt.image, mode text) RETURNS pxt.image
LANGUAGE plpython3u STRICT AS $py$
#@pxt
return srv.guard(srv.image.convert, img, mode)
$py$;

CREATE OR REPLACE FUNCTION pxt.image_info(img pxt.image) RETURNS jsonb
LANGUAGE plpython3u STRICT AS $py$
#@pxt
import json
return json.dumps(srv.guard(srv.image.info, img))
$py$;

CREATE OR REPLACE FUNCTION pxt.width(img pxt.image) RETURNS integer
LANGUAGE plpython3u STRICT AS $py$
#@pxt
return srv.guard(srv.image.info, img)["width"]
$py$;

CREATE OR REPLACE FUNCTION pxt.height(img pxt.image) RETURNS integer
LANGUAGE plpython3u STRICT AS $py$
#@pxt
return srv.guard(srv.image.info, img)["height"]
$py$;

CREATE OR REPLACE FUNCTION pxt.mode(img pxt.image) RETURNS text
LANGUAGE plpython3u STRICT AS $py$
#@pxt
return srv.guard(srv.image.info, img)["mode"]
$py$;

CREATE OR REPLACE FUNCTION pxt.format(img pxt.image) RETURNS text
LANGUAGE plpython3u STRICT AS $py$
#@pxt
return srv.guard(srv.image.info, img)["format"]
$py$;

CREATE OR REPLACE FUNCTION pxt.to_bytes(img pxt.image, format text DEFAULT NULL) RETURNS bytea
LANGUAGE plpython3u AS $py$
#@pxt
if img is None:
    return None
return srv.guard(srv.image.to_bytes, img, format)
$py$;
COMMENT ON FUNCTION pxt.to_bytes(pxt.image, text) IS 'The image file''s bytes, or re-encoded in format (PNG, JPEG, WEBP, ...)';

CREATE OR REPLACE FUNCTION pxt.image_url(img pxt.image, max_side integer DEFAULT NULL) RETURNS text
LANGUAGE plpython3u AS $py$
#@pxt
if img is None:
    return None
return srv.guard(srv.image.data_uri, img, max_side)
$py$;
COMMENT ON FUNCTION pxt.image_url(pxt.image, integer) IS 'data:image/...;base64 URI of the image (downscaled to max_side if given): for BI tools and LLM messages';

CREATE OR REPLACE FUNCTION pxt.image_from_bytes(data bytea) RETURNS pxt.image
LANGUAGE plpython3u STRICT AS $py$
#@pxt
return srv.guard(srv.image.from_bytes, data)
$py$;

CREATE OR REPLACE FUNCTION pxt.image_from_data_uri(uri text) RETURNS pxt.image
LANGUAGE plpython3u STRICT AS $py$
#@pxt
return srv.guard(srv.image.from_data_uri, uri)
$py$;
