-- The ground everything stands on: the server Python, the extension's lifecycle, and the
-- settings only a superuser may change.
\getenv files PXT_REGRESS_FILES
\getenv version PXT_REGRESS_VERSION
\set SHOW_CONTEXT never

-- a missing server Python directory is a clear error, and the backend survives
-- (first in this file: each backend loads the server Python once)
\set empty_dir :files/empty_dir
SET pixelgres.python_dir = :'empty_dir';
SELECT pxt.server_info();
SELECT 1 AS still_connected;
-- a new backend, with the default directory
\c

-- the extension's version is the Python package's (PXT_REGRESS_VERSION)
SELECT pxt.version() = :'version' AS matches_package;

-- the extension drops and re-creates cleanly, alone or with what it needs (the suite's own
-- test objects, which use plpython3u, go first)
DROP SCHEMA pxt_test CASCADE;
DROP EXTENSION pixelgres;
SELECT count(*) FROM pg_namespace WHERE nspname = 'pxt';
CREATE EXTENSION pixelgres;
SELECT pxt.version() = :'version' AS matches_package;
DROP EXTENSION pixelgres, vector, plpython3u;
CREATE EXTENSION pixelgres CASCADE;
SELECT extname FROM pg_extension WHERE extname IN ('pixelgres', 'vector', 'plpython3u') ORDER BY extname;

-- settings that protect the host are superuser-only
SELECT 'regress_pxt_' || substr(md5(random()::text), 1, 8) AS plain_role \gset
CREATE ROLE :plain_role;
SET ROLE :plain_role;
-- refused outright when the library is preloaded (as in clusters pixelgres starts); elsewhere
-- SET only makes a placeholder, which loading the library discards: either way it has no effect
DO $$ BEGIN SET pixelgres.allowed_roots = '/'; EXCEPTION WHEN insufficient_privilege THEN NULL; END $$;
SELECT pxt._guc_init();
SELECT current_setting('pixelgres.allowed_roots') <> '/' AS not_set;
SET pixelgres.python_dir = '1';
\echo :LAST_ERROR_SQLSTATE
SET pixelgres.allowed_roots = '1';
\echo :LAST_ERROR_SQLSTATE
SET pixelgres.media_dir = '1';
\echo :LAST_ERROR_SQLSTATE
SET pixelgres.max_image_pixels = '1';
\echo :LAST_ERROR_SQLSTATE
-- a user-level setting
SET pixelgres.openai_base_url = 'http://127.0.0.1:1/v1';
RESET ROLE;
DROP ROLE :plain_role;
