-- The work queue of deferred computed columns for workers outside the backend (logic in
-- pixelgres.server.ddl.work; the worker is pixelgres.workers, `pixelgres worker --ray`).
-- _work_claim and _work_complete evaluate the column's expression and fire the table's
-- triggers, so like pxt.process_pending they run on the caller's search_path (20_tables.sql).

CREATE OR REPLACE FUNCTION pxt._work_register(engine text, host text, pid integer, concurrency integer)
RETURNS bigint LANGUAGE plpython3u AS $py$
#@pxt
return srv.work.register(engine, host, pid, concurrency)
$py$;

CREATE OR REPLACE FUNCTION pxt._work_heartbeat(worker bigint, lease_seconds double precision)
RETURNS integer LANGUAGE plpython3u AS $py$
#@pxt
return srv.work.heartbeat(worker, lease_seconds)
$py$;

CREATE OR REPLACE FUNCTION pxt._work_stop(worker bigint) RETURNS void LANGUAGE plpython3u AS $py$
#@pxt
srv.work.stop(worker)
$py$;

CREATE OR REPLACE FUNCTION pxt._work_claim(tbl text, col text, worker bigint, batch_size integer,
                                           lease_seconds double precision) RETURNS jsonb
LANGUAGE plpython3u AS $py$
#@pxt
return srv.work.claim(tbl, col, worker, batch_size, lease_seconds)
$py$;
COMMENT ON FUNCTION pxt._work_claim(text, text, bigint, integer, double precision) IS
  'Lease up to batch_size pending rows of a deferred column; returns their batched calls for a worker to compute';

CREATE OR REPLACE FUNCTION pxt._work_complete(worker bigint, relid oid, col text, rows jsonb, calls jsonb)
RETURNS jsonb LANGUAGE plpython3u AS $py$
#@pxt
return srv.work.complete(worker, relid, col, rows, calls)
$py$;
COMMENT ON FUNCTION pxt._work_complete(bigint, oid, text, jsonb, jsonb) IS
  'Write back a claimed batch: only rows still leased and unchanged since the claim; one table version';

CREATE OR REPLACE FUNCTION pxt._pending_work()
RETURNS TABLE ("table" text, "column" text, pending bigint, running bigint, done bigint, failed bigint,
               rows_per_s double precision, workers bigint)
LANGUAGE plpython3u AS $py$
#@pxt
return srv.work.pending_work()
$py$;
-- the view pxt.pending_work over it is made once, by sql/migrations/0029_work_queue.sql
