"""The demo pipeline ``make demo`` runs against the embedded cluster, printing what it does."""
from __future__ import annotations

import psycopg

from .cluster import Cluster


def run(cluster: Cluster) -> int:
    dsn = cluster.ensure_database()
    print(f"pixelgres demo on {dsn}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        info = conn.execute("SELECT pxt.server_info()").fetchone()[0]
        print(f"  extension pixelgres {conn.execute('SELECT pxt.version()').fetchone()[0]}, "
              f"server Python {info['python']} from {info['python_dir']}")
        for name, p in info["packages"].items():
            print(f"    {name:8} {p['version']:10} {p['path']}")
    return 0
