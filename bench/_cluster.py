"""A throwaway cluster for benchmarks (same settings as the test suite's)."""
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import psycopg

from pixelgres.cluster import Cluster


@contextlib.contextmanager
def bench_cluster(files: Path | None = None):
    base = Path(tempfile.mkdtemp(prefix="pixelgres-bench-"))
    os.chmod(base, 0o755)
    roots = f"'{files}'" if files else "''"
    c = Cluster(base / "home", settings={"pixelgres.allowed_roots": roots, "fsync": "off",
                                          "synchronous_commit": "off", "shared_buffers": "512MB"}).start()
    try:
        dsn = c.ensure_database("bench")
        with psycopg.connect(dsn, autocommit=True) as conn:
            yield conn, dsn
    finally:
        c.destroy()
        shutil.rmtree(base, ignore_errors=True)
