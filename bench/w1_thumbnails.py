"""W1: thumbnails of photo-like JPEGs, pixelgres vs a plain single-process Pillow loop.

Starts its own throwaway cluster (like tests/conftest.py), generates N 1024x768 JPEGs
(gradients + shapes + noise, so decoding costs what a photo's does), then measures:

  (a) plain Pillow: open, resize to 256x256, save JPEG (quality 90, as pixelgres stores JPEGs);
  (b) pixelgres: one INSERT of all N paths into a managed table with an image column and the
      computed column pxt.resize(image, 256, 256) (validation + thumbnail + store, per row);
  (c) backfill of a second computed column pxt.rotate(image, 90) over the existing rows
      (pxt.add_computed_column) vs plain Pillow open / rotate(90) / save.

Both sides are single-process and single-threaded; the backend is warmed up first (its first
call imports Pillow), as a long-lived server connection would be.

    .venv/bin/python bench/w1_thumbnails.py [--n 200] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))
from pixelgres.cluster import Cluster  # noqa: E402

W, H = 1024, 768
THUMB = (256, 256)
QUALITY = 90  # pixelgres stores derived JPEGs at quality 90; the plain loop does the same
TARGET = 1.5


def photo_like(i: int) -> Image.Image:
    """A 1024x768 RGB image with smooth gradients, a few soft shapes and sensor-like noise."""
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.empty((H, W, 3), np.float32)
    for c in range(3):
        a, b, p = rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25), rng.uniform(0, 6.28)
        img[..., c] = 128 + a * (x - W / 2) + b * (y - H / 2) + 40 * np.sin(x / rng.uniform(40, 160) + p)
    for _ in range(6):  # soft blobs ("objects")
        cx, cy, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(40, 200)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        img += blob[..., None] * rng.uniform(-90, 90, 3)
    img += rng.normal(0, 9, (H, W, 3))  # noise: textures make the entropy decoder work
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def generate(d: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        p = d / f"photo_{i:05d}.jpg"
        photo_like(i).save(p, "JPEG", quality=85)
        os.chmod(p, 0o644)
        paths.append(p)
    return paths


def plain_thumbnails(paths: list[Path], out: Path) -> float:
    t = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            im.resize(THUMB).save(out / f"t_{p.stem}.jpg", "JPEG", quality=QUALITY)
    return time.perf_counter() - t


def plain_rotate(paths: list[Path], out: Path) -> float:
    t = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            im.rotate(90).save(out / f"r_{p.stem}.jpg", "JPEG", quality=QUALITY)
    return time.perf_counter() - t


def timed(conn, query, params=None) -> float:
    t = time.perf_counter()
    conn.execute(query, params)
    return time.perf_counter() - t


def line(label: str, n: int, t_pxt: float, t_plain: float, target: float | None = None) -> str:
    r_pxt, r_plain = n / t_pxt, n / t_plain
    ratio = r_pxt / r_plain
    s = f"W1 {label}: pixelgres {r_pxt:.1f} rows/s, plain PIL {r_plain:.1f} rows/s, ratio {ratio:.2f}x"
    if target:
        s += f" (target >= {target}x{'' if ratio >= target else ', BELOW TARGET'})"
    return s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="number of images (default 200)")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory (cluster + files)")
    args = ap.parse_args()
    n = args.n

    base = Path(tempfile.mkdtemp(prefix="pixelgres-bench-w1-"))
    os.chmod(base, 0o755)
    files = base / "files"
    files.mkdir()
    os.chmod(files, 0o755)
    out = base / "plain_out"
    out.mkdir()
    cluster = None
    try:
        t = time.perf_counter()
        paths = generate(files, n)
        warm = files / "warmup.jpg"
        photo_like(10**6).save(warm, "JPEG", quality=85)
        os.chmod(warm, 0o644)
        print(f"generated {n} {W}x{H} JPEGs ({sum(p.stat().st_size for p in paths) / n / 1024:.0f} KiB avg) "
              f"in {time.perf_counter() - t:.1f}s", flush=True)

        cluster = Cluster(base / "home", settings={
            "pixelgres.allowed_roots": f"'{files}'",
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "shared_buffers": "256MB",
        }).start()
        dsn = cluster.ensure_database("bench")

        with psycopg.connect(dsn, autocommit=True) as conn:
            # warm the backend: the first pixelgres call imports the server Python and Pillow
            t = time.perf_counter()
            conn.execute("SELECT pxt.resize(%s, 8, 8)", (str(warm),))
            print(f"backend warm-up (server Python + Pillow import, one resize): {time.perf_counter() - t:.2f}s")

            # (a) + (b): insert with a computed thumbnail
            t_plain = plain_thumbnails(paths, out)
            conn.execute("""SELECT pxt.create_table('w1.photos', '{"image": "image", "name": "string"}')""")
            conn.execute("SELECT pxt.add_computed_column('w1.photos', 'thumb', 'pxt.resize(image, 256, 256)')")
            t_pxt = timed(conn, "INSERT INTO w1.photos (image, name) SELECT p, 'p' || i FROM unnest(%s::text[]) "
                                "WITH ORDINALITY AS u(p, i)", ([str(p) for p in paths],))
            got = conn.execute("SELECT count(*), count(thumb), count(DISTINCT thumb) FROM w1.photos").fetchone()
            assert got == (n, n, n), got
            w, h = conn.execute("SELECT pxt.width(thumb), pxt.height(thumb) FROM w1.photos LIMIT 1").fetchone()
            assert (w, h) == THUMB, (w, h)
            print(line("insert+thumbnail", n, t_pxt, t_plain, TARGET), flush=True)

            # (c): backfill of a second computed column over the existing rows
            t_plain_rot = plain_rotate(paths, out)
            t_pxt_rot = timed(conn, "SELECT pxt.add_computed_column('w1.photos', 'rotated', 'pxt.rotate(image, 90)')")
            got = conn.execute("SELECT count(rotated), count(DISTINCT rotated) FROM w1.photos").fetchone()
            assert got == (n, n), got
            print(line("backfill rotate 90", n, t_pxt_rot, t_plain_rot), flush=True)

            # where the time goes (same rows, no table): SQL-level breakdown per image
            print("breakdown (SELECT over the same paths, per row):")
            arr = ([str(p) for p in paths],)
            for label, q in [
                ("pxt._validate_media (insert check)", "SELECT count(pxt._validate_media(p, 'image')) FROM unnest(%s::text[]) p"),
                ("pxt.width (header only)", "SELECT sum(pxt.width(p)) FROM unnest(%s::text[]) p"),
                ("pxt.resize 256x256 (decode+resize+store)", "SELECT count(pxt.resize(p, 256, 256)) FROM unnest(%s::text[]) p"),
                ("pxt.rotate 90 (decode+rotate+store)", "SELECT count(pxt.rotate(p, 90)) FROM unnest(%s::text[]) p"),
            ]:
                t = timed(conn, q, arr)
                print(f"  {label:45s} {t / n * 1000:7.2f} ms")
            t_open = time.perf_counter()
            for p in paths:
                with Image.open(p) as im:
                    im.load()
            t_open = time.perf_counter() - t_open
            print(f"  {'plain PIL full decode only':45s} {t_open / n * 1000:7.2f} ms")
    finally:
        if cluster and not args.keep:
            cluster.destroy()
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
