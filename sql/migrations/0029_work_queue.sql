-- Run once (0.2.0): the work queue of deferred computed columns for workers outside the backend
-- (pixelgres worker --ray; pixelgres.server.ddl.work explains claims, leases and write-back).
-- Runtime state, not data: pg_dump leaves the rows out (no pg_extension_config_dump).

-- One row per worker session. It is alive while its session (backend_pid, backend_start) is,
-- so a killed worker's leases are reclaimed at once; heartbeat_at shows it is making progress.
CREATE TABLE pxt.workers (
    id            bigserial PRIMARY KEY,
    owner         name NOT NULL DEFAULT current_user,
    engine        text NOT NULL,             -- 'ray' or 'local'
    host          text,                      -- where the worker process runs
    pid           integer,                   -- the worker process (not the backend)
    concurrency   integer,                   -- Ray actors computing for it
    backend_pid   integer NOT NULL,
    backend_start timestamptz NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz,
    rows_done     bigint NOT NULL DEFAULT 0,
    rows_failed   bigint NOT NULL DEFAULT 0, -- written with an error (on_error => 'ignore')
    rows_stale    bigint NOT NULL DEFAULT 0  -- results discarded: the row changed, or the lease was lost
);
COMMENT ON TABLE pxt.workers IS 'pixelgres: workers computing deferred columns outside the backend (pixelgres worker --ray)';

-- A pending cell a worker is computing. row_xmin is the row's xmin at the claim: the result is
-- written only if the row is unchanged. A lease of a dead, stopped or expired worker is reclaimed.
CREATE TABLE pxt.work_leases (
    relid      oid NOT NULL,
    col        name NOT NULL,
    rowid      bigint NOT NULL,
    worker     bigint NOT NULL REFERENCES pxt.workers ON DELETE CASCADE,
    row_xmin   text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (relid, col, rowid)
);
CREATE INDEX work_leases_worker ON pxt.work_leases (worker);
COMMENT ON TABLE pxt.work_leases IS 'pixelgres: rows of deferred columns claimed by a worker (pxt.pending_work counts them as running)';

-- One row per written batch, for rows/s in pxt.pending_work (kept a day).
CREATE TABLE pxt.work_batches (
    worker      bigint NOT NULL,
    relid       oid NOT NULL,
    col         name NOT NULL,
    rows        integer NOT NULL,
    errors      integer NOT NULL,
    stale       integer NOT NULL,
    claimed_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX work_batches_column ON pxt.work_batches (relid, col, finished_at);

-- Everyone reads the queue; a worker row is written by its role, leases and the log by roles
-- that may update the table (privileges: sql/functions/90_privileges.sql).
ALTER TABLE pxt.workers ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON pxt.workers FOR SELECT USING (true);
CREATE POLICY own ON pxt.workers FOR ALL USING (owner = current_user) WITH CHECK (owner = current_user);
ALTER TABLE pxt.work_leases ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON pxt.work_leases FOR SELECT USING (true);
CREATE POLICY writer ON pxt.work_leases FOR ALL USING (pg_catalog.has_table_privilege(relid, 'UPDATE'))
    WITH CHECK (pg_catalog.has_table_privilege(relid, 'UPDATE'));
ALTER TABLE pxt.work_batches ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON pxt.work_batches FOR SELECT USING (true);
CREATE POLICY writer ON pxt.work_batches FOR ALL USING (pg_catalog.has_table_privilege(relid, 'UPDATE'))
    WITH CHECK (pg_catalog.has_table_privilege(relid, 'UPDATE'));

-- SELECT * FROM pxt.pending_work. The function's body is replaced by sql/functions/26_work.sql
-- on every install and upgrade; it is made here only so the view can be.
CREATE FUNCTION pxt._pending_work()
RETURNS TABLE ("table" text, "column" text, pending bigint, running bigint, done bigint, failed bigint,
               rows_per_s double precision, workers bigint)
LANGUAGE plpython3u AS $py$
#@pxt
return srv.work.pending_work()
$py$;
CREATE VIEW pxt.pending_work AS SELECT * FROM pxt._pending_work();
COMMENT ON VIEW pxt.pending_work IS
  'Per deferred computed column: pending (not claimed yet), running (leased by live workers), done, failed, rows/s over the last minute, workers';
