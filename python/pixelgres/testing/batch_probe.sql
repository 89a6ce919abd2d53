-- Test-only objects (tests/conftest.py runs this in the template database, with the boot
-- preamble in place of #@pxt). See batch_probe.py.
CREATE SCHEMA pxt_test;
GRANT USAGE ON SCHEMA pxt_test TO PUBLIC;
CREATE FUNCTION pxt_test.batch_probe(x text) RETURNS text LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.testing import batch_probe as _impl  # noqa: F401 - registers the batch implementation
return srv.batch.call("batch_probe", (x,))
$py$;
INSERT INTO pxt.batched_functions (func) VALUES ('pxt_test.batch_probe(text)');
CREATE FUNCTION pxt_test.media_hold(marker text, block boolean) RETURNS void LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.testing import media_hold as _impl
_impl.hold(marker, block)
$py$;
CREATE FUNCTION pxt_test.media_release() RETURNS void LANGUAGE plpython3u AS $py$
#@pxt
from pixelgres.testing import media_hold as _impl
_impl.release()
$py$;
