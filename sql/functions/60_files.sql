-- Tables to and from files: Parquet exports and Parquet / CSV / JSON-lines imports, local to the
-- server or in buckets (declared in 60_files.toml; the work is in pixelgres.server.exports).

-- @registry
