"""The demo pipeline ``make demo`` runs against the embedded cluster, printing what it does.

It generates its own sample media (so it needs no network), then runs the seed's pipeline in
SQL: images -> thumbnails -> versions; each later capability adds its step here.
"""
from __future__ import annotations

import os
from pathlib import Path

import psycopg

from .cluster import Cluster

SCENES = [  # (file, background, shape colour, shape)
    ("red_ball.jpg", (40, 90, 200), (220, 30, 30), "ellipse"),
    ("green_box.jpg", (240, 240, 230), (30, 160, 60), "rectangle"),
    ("sunset.jpg", (250, 140, 40), (255, 230, 80), "ellipse"),
    ("night.png", (10, 10, 40), (240, 240, 255), "ellipse"),
]


def make_samples(d: Path) -> list[Path]:
    from PIL import Image, ImageDraw

    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o755)
    out = []
    for name, bg, fg, shape in SCENES:
        p = d / name
        if not p.exists():
            im = Image.new("RGB", (1024, 768), bg)
            getattr(ImageDraw.Draw(im), shape)((312, 184, 712, 584), fill=fg)
            im.save(p)
            os.chmod(p, 0o644)
        out.append(p)
    return out


def show(conn, title: str, sql: str, params=None) -> list:
    cur = conn.execute(sql, params)
    rows = cur.fetchall()
    print(f"\n-- {title}\n{sql.strip()}")
    if cur.description:
        names = [d.name for d in cur.description]
        print("  " + " | ".join(names))
        for r in rows:
            print("  " + " | ".join("NULL" if v is None else (str(v)[:72]) for v in r))
    return rows


def run(cluster: Cluster) -> int:
    dsn = cluster.ensure_database()
    print(f"pixelgres demo on {dsn}")
    samples = make_samples(cluster.runtime / "samples")
    with psycopg.connect(dsn, autocommit=True) as conn:
        info = conn.execute("SELECT pxt.server_info()").fetchone()[0]
        print(f"  extension pixelgres {conn.execute('SELECT pxt.version()').fetchone()[0]}, "
              f"server Python {info['python']} from {info['python_dir']}")
        for name, p in info["packages"].items():
            print(f"    {name:8} {p['version']:10} {p['path']}")
        conn.execute("DROP VIEW IF EXISTS demo.images_before_relabeling")  # from an earlier run
        conn.execute("SELECT pxt.create_table('demo.images', '{\"image\": \"image\", \"category\": \"string\"}', "
                     "if_exists => 'replace')")
        show(conn, "computed columns", "SELECT pxt.add_computed_column('demo.images', 'thumbnail', "
                                       "'pxt.thumbnail(image, 256, 256)')")
        conn.execute("SELECT pxt.add_computed_column('demo.images', 'size', "
                     "$$pxt.width(thumbnail) || 'x' || pxt.height(thumbnail)$$)")
        conn.execute("INSERT INTO demo.images (image, category) SELECT unnest(%s::text[]), 'unknown'",
                     ([str(p) for p in samples],))
        show(conn, "images with thumbnails, computed by the database on INSERT",
             "SELECT image, thumbnail, size FROM demo.images ORDER BY _pxt_rowid")
        conn.execute("SELECT pxt.create_snapshot('demo.images_before_relabeling', 'demo.images')")
        conn.execute("UPDATE demo.images SET category = 'shape' WHERE image LIKE '%ball%' OR image LIKE '%box%'")
        show(conn, "history", "SELECT version, change_type, inserts, updates, schema_change->>'op' AS op "
                              "FROM pxt.history('demo.images')")
        show(conn, "revert the relabeling", "SELECT pxt.revert('demo.images')")
        show(conn, "the snapshot is unaffected by later changes",
             "SELECT count(*) AS rows, count(*) FILTER (WHERE category = 'unknown') AS unknown "
             "FROM demo.images_before_relabeling")
    print("\ndemo done: explore with `.venv/bin/pixelgres psql`")
    return 0
