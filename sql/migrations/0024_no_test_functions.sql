-- Run once (0.2.0). pxt.batch_probe was a test hook in the production schema; tests install
-- their own (python/pixelgres/testing/batch_probe.sql). Kept if a computed column uses it.
DO $$
DECLARE f pg_catalog.regprocedure := pg_catalog.to_regprocedure('pxt.batch_probe(text)');
BEGIN
    IF f IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_depend d
            WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
              AND d.refobjid OPERATOR(pg_catalog.=) f AND d.deptype OPERATOR(pg_catalog.=) 'n') THEN
        DELETE FROM pxt.batched_functions WHERE func OPERATOR(pg_catalog.=) f;
        DROP FUNCTION pxt.batch_probe(text);
    END IF;
END $$;
