-- Boot: load the GUCs, put the private server Python first on sys.path, check versions.

CREATE OR REPLACE FUNCTION pxt._guc_init() RETURNS boolean
    AS 'MODULE_PATHNAME', 'pxt_guc_init' LANGUAGE C STRICT;

CREATE OR REPLACE FUNCTION pxt.version() RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT '@PXT_VERSION@'::text $$;

-- Runs once per backend (the generated preamble of every plpython3u function calls it when
-- GD has no 'pxt_srv'); it is the only place that touches sys.path.
CREATE OR REPLACE FUNCTION pxt._boot() RETURNS void LANGUAGE plpython3u AS $py$
import importlib, os, sys
def fail(message, hint=None):
    GD["pxt_boot_error"] = {"message": message, "hint": hint}
d = plpy.execute("SELECT pxt._guc_init(), current_setting('pixelgres.python_dir') AS d")[0]["d"]
hint = "run 'make install' (or scripts/setup.sh) to install pixelgres's server Python into " + d
if not os.path.isfile(os.path.join(d, "pixelgres", "server", "__init__.py")):
    return fail(f"pixelgres server Python not found in {d}", hint)
# Private directory first; no system or user site-packages: the backend must run exactly
# the pinned dependencies whatever else the host's Python has installed.
sys.path[:] = [d] + [p for p in sys.path
                     if p != d and not p.rstrip("/").endswith(("site-packages", "dist-packages"))]
for name in [m for m in sys.modules if m == "pixelgres" or m.startswith("pixelgres.")]:
    del sys.modules[name]
try:
    srv = importlib.import_module("pixelgres.server")
except Exception as e:
    return fail(f"pixelgres server Python in {d} failed to import: {type(e).__name__}: {e}", hint)
if srv.__version__ != "@PXT_VERSION@":
    return fail(f"pixelgres server Python in {d} is version {srv.__version__}, "
                f"the extension is @PXT_VERSION@", hint)
GD["pxt_srv"] = srv
$py$;

CREATE OR REPLACE FUNCTION pxt.server_info() RETURNS jsonb LANGUAGE plpython3u AS $py$
#@pxt
return srv.server_info()
$py$;
COMMENT ON FUNCTION pxt.server_info() IS 'Versions and locations of the server-side Python and the packages it loaded';
