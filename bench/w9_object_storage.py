"""W9: insert + thumbnail with the sources in a bucket and the thumbnails written to a bucket,
vs the same insert from local files, measured in the same run.

A throwaway cluster, and moto in server mode on loopback (pixelgres.testing.s3_server, without
faults) standing in for S3. Each of --repeat rounds generates N 1024x768 JPEGs (as W1) and
measures, back to back:

  (a) local:  INSERT of N local paths into a table with pxt.resize(image, 256, 256);
  (b) bucket: the same JPEGs uploaded to a bucket beforehand (not timed), then
      pxt.prefetch_media over the N URIs (what the Python client's insert does) and the INSERT
      of the N s3:// URIs into a table whose thumbnail column has destination => s3://...;
  (c) cached: the same N URIs into a fresh table with the same destination: the sources come
      from the cache (one HEAD each), the thumbnails are already there (no upload).

  (d) plain: a hand-written loop over the same objects with the same libraries -- obstore GET,
      Pillow resize + JPEG encode, obstore PUT -- one object at a time, as a script would.

  (e) video: a 60 s 640x480 H.264 clip (the W3 video), 60 frames at fps=1 through
      pxt.frame_iterator from the bucket (first pass: the whole object is downloaded into the
      cache, then decoded; second pass: cached) vs from the local file: how much a whole-file
      download costs a sparse pass, which is what ranged reads would save.

Ratios are paired per round (bucket / local, cached / local, bucket / plain) and their median is
reported with the spread. moto is a Python server on the same 2 cores (reached directly, not
through the tests' counting proxy), so its CPU time per request is in every bucket number: the
plain loop shows what the requests alone cost here; a real S3 answers from other machines.

    .venv/bin/python bench/w9_object_storage.py [--n 200] [--repeat 3] [--keep]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import uuid

from _cluster import bench_dir, cluster, connect, readable_dir, timed, timed_backend
from _media import write_photos

from pixelgres.testing.s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Server

THUMB = (256, 256)


def plain_loop(s3: S3Server, src: str, dst: str, keys: list[str]) -> float:
    """GET, resize, PUT, one object at a time, with obstore and Pillow."""
    import io
    import time

    import obstore
    from obstore.store import S3Store
    from PIL import Image

    cfg = {"endpoint": s3.moto_endpoint, "region": REGION, "access_key_id": ACCESS_KEY,
           "secret_access_key": SECRET_KEY}
    a = S3Store(src, config=cfg, client_options={"allow_http": True})
    b = S3Store(dst, config=cfg, client_options={"allow_http": True})
    t = time.perf_counter()
    for k in keys:
        data = obstore.get(a, k).bytes()
        out = io.BytesIO()
        with Image.open(io.BytesIO(bytes(data))) as im:
            im.resize(THUMB).save(out, "JPEG", quality=90)
        obstore.put(b, "plain/" + k, out.getvalue())
    return time.perf_counter() - t

TARGET_FIRST, TARGET_CACHED = 1.3, 1.05


def video_pass(conn, s3: S3Server, src: str, files) -> None:
    import time

    from w3_frames import RATE, H, W, frames
    from _media import write_video

    clip = files / "w9.mp4"
    write_video(clip, frames(60), W, H, RATE, {"preset": "veryfast", "crf": "23"})
    s3.put_object(src, "video/w9.mp4", clip.read_bytes())
    q = "SELECT count(*) FROM pxt.frame_iterator(%s::pxt.video, fps => 1)"
    conn.execute(q, (str(clip),))  # warm: PyAV imported, the file in the page cache
    out = {}
    for label, ref in (("local", str(clip)), ("bucket, first", f"s3://{src}/video/w9.mp4"),
                       ("bucket, cached", f"s3://{src}/video/w9.mp4")):
        t = time.perf_counter()
        n = conn.execute(q, (ref,)).fetchone()[0]
        out[label] = time.perf_counter() - t
        assert n == 60, n
    mb = clip.stat().st_size / 1e6
    print(f"W9 video, 60 of 1800 frames ({mb:.1f} MB): local {out['local']:.2f}s, bucket first pass "
          f"{out['bucket, first']:.2f}s ({out['bucket, first'] / out['local']:.2f}x: the whole-file download), "
          f"cached {out['bucket, cached']:.2f}s ({out['bucket, cached'] / out['local']:.2f}x)")


def spread(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.2f}x (min {min(xs):.2f}x, max {max(xs):.2f}x)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    n = args.n
    with bench_dir("w9", args.keep) as base, S3Server() as s3:
        files = readable_dir(base / "files", 0o777)
        cfg = files / "storage.toml"
        cfg.write_text(f'["s3://"]\nendpoint = "{s3.moto_endpoint}"\nallow_http = true\nregion = "{REGION}"\n'
                       f'access_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\n')
        cfg.chmod(0o644)
        src, dst = s3.create_bucket(f"w9-src-{uuid.uuid4().hex[:8]}"), s3.create_bucket(f"w9-dst-{uuid.uuid4().hex[:8]}")
        settings = {"pixelgres.storage_config": f"'{cfg}'", "pixelgres.allowed_buckets": f"'s3://{src}/,s3://{dst}/'"}
        from _cluster import FAST

        with cluster(base, files, args.keep, {**FAST, **settings}) as dsn, connect(dsn) as conn:
            warm = write_photos(readable_dir(files / "warm"), 1, seed=10**6)[0]
            print(f"backend warm-up: {timed(conn, 'SELECT pxt.resize(%s, 8, 8)', (str(warm),)):.2f}s")
            first, cached, vs_plain = [], [], []
            for r in range(args.repeat):
                paths = write_photos(readable_dir(files / f"set{r}"), n, seed=r * n)
                uris = []
                for p in paths:
                    s3.put_object(src, f"set{r}/{p.name}", p.read_bytes())
                    uris.append(f"s3://{src}/set{r}/{p.name}")
                for name, dest in ((f"w9.local{r}", None), (f"w9.bucket{r}", f"s3://{dst}/thumbs/"),
                                   (f"w9.cached{r}", f"s3://{dst}/thumbs/")):
                    conn.execute("SELECT pxt.create_table(%s, '{\"image\": \"image\"}')", (name,))
                    conn.execute("SELECT pxt.add_computed_column(%s, 'thumb', 'pxt.resize(image, 256, 256)', "
                                 "destination => %s)", (name, dest))
                insert = "INSERT INTO {} (image) SELECT unnest(%s::text[])"
                t_local = timed_backend(conn, insert.format(f"w9.local{r}"), ([str(p) for p in paths],))
                s3.reset()
                t_fetch = timed_backend(conn, "SELECT count(*) FROM pxt.prefetch_media(%s)", (uris,)).wall
                t_bucket = t_fetch + timed_backend(conn, insert.format(f"w9.bucket{r}"), (uris,)).wall
                t_cached = timed_backend(conn, "SELECT count(*) FROM pxt.prefetch_media(%s)", (uris,)).wall
                t_cached += timed_backend(conn, insert.format(f"w9.cached{r}"), (uris,)).wall
                t_plain = plain_loop(s3, src, dst, [f"set{r}/{p.name}" for p in paths])
                got = conn.execute(f"SELECT count(*), count(DISTINCT thumb) FROM w9.bucket{r} "
                                   "WHERE thumb LIKE 's3://%%'").fetchone()
                assert got == (n, n), got
                first.append(t_bucket / t_local.wall)
                cached.append(t_cached / t_local.wall)
                vs_plain.append(t_bucket / t_plain)
                print(f"  repeat {r + 1}/{args.repeat}: local {n / t_local.wall:.1f} rows/s, bucket "
                      f"{n / t_bucket:.1f} rows/s (prefetch {t_fetch:.2f}s of {t_bucket:.2f}s), cached {n / t_cached:.1f} rows/s, "
                      f"plain obstore+PIL loop {n / t_plain:.1f} rows/s", flush=True)
            video_pass(conn, s3, src, files)
            f, c = statistics.median(first), statistics.median(cached)
            print(f"W9 bucket first pass / local: {spread(first)} (target <= {TARGET_FIRST}x"
                  f"{'' if f <= TARGET_FIRST else ', ABOVE TARGET'})")
            print(f"W9 bucket cached pass / local: {spread(cached)} (target <= {TARGET_CACHED}x"
                  f"{'' if c <= TARGET_CACHED else ', ABOVE TARGET'})")
            print(f"W9 bucket first pass / plain obstore+PIL loop: {spread(vs_plain)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
