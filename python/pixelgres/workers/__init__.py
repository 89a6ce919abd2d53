"""Workers that compute deferred columns outside the backend (``pixelgres worker --ray``).

PostgreSQL stays the catalog, the source of truth and the queue (pixelgres.server.ddl.work);
``ray_engine`` runs the heavy calls on a Ray cluster; ``plpy_conn`` lets the server's own
function implementations run there unchanged; ``limiter`` shares rate limits across workers.
"""
