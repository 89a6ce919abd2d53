"""W3: video frames, pixelgres iterator views vs a plain PyAV decode loop, same run.

Generates a 60 s 640x480 30 fps H.264 video (libx264 veryfast, CRF 23, default GOP and
B-frames; scrolling gradient, moving shapes and light noise), starts a throwaway cluster
(like tests/conftest.py) and measures two cases, each producing the same output both ways:

  (a) fps=1, stored frames: the plain loop decodes the video with PyAV's defaults and saves
      the frame on screen at each second as a JPEG (quality 90, as pixelgres stores frames);
      pixelgres: INSERT of the video's path into a table with the view
      pxt.create_view(..., 'pxt.frame_iterator(video, fps => 1)'): 60 frames decoded, stored
      in the media store and inserted as view rows, in the one statement;
  (b) all 1,800 frames: the same with every frame (view 'pxt.frame_iterator(video)').

Ratios are pixelgres time / plain time (targets: <= 0.8x for fps=1, <= 0.6x for all frames),
medians of --repeat runs that alternate between the two, each writing its frames afresh (the
media store is emptied before each pixelgres run, since it skips files it already has).
For information it also times the iterator alone (SELECT FROM pxt.frame_iterator, no table)
and a plain loop with PyAV's frame threading switched on. The backend is warmed up first
(its first call imports PyAV), as a long-lived server connection would be.

    .venv/bin/python bench/w3_frames.py [--seconds 60] [--keep]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import av
import numpy as np
from _cluster import bench_dir, cluster, connect, readable_dir, timed
from _media import write_video

W, H, RATE = 640, 480, 30
QUALITY = 90
TARGETS = {"fps=1": 0.8, "all frames": 0.6}  # issue #20


def frames(seconds: int):
    """Scrolling gradient, three moving rectangles and light noise."""
    rng = np.random.default_rng(7)
    x = np.linspace(0, 1, 2 * W, dtype=np.float32)
    y = np.linspace(0, 1, H, dtype=np.float32)[:, None]
    bg = np.stack([200 * x[None, :] * (1 - y) + 30, 180 * y + 40 * x[None, :], 120 + 80 * np.sin(6 * x)[None, :] * y],
                  axis=-1).astype(np.uint8)
    noise = [rng.integers(-10, 11, (H, W, 3), dtype=np.int16) for _ in range(4)]
    for i in range(seconds * RATE):
        off = (i * 3) % W
        img = bg[:, off:off + W].astype(np.int16) + noise[i % 4]
        for k, color in enumerate(((250, 60, 60), (60, 250, 90), (70, 90, 250))):
            cx = int((W - 120) * (0.5 + 0.5 * np.sin(i / (25 + 10 * k) + k)))
            cy = int((H - 90) * (0.5 + 0.5 * np.cos(i / (35 + 7 * k) + 2 * k)))
            img[cy:cy + 90, cx:cx + 120] = color
        yield np.clip(img, 0, 255).astype(np.uint8)


def plain(path: Path, out: Path, fps: float | None, threads: bool = False) -> tuple[float, int]:
    """A plain decode loop: every frame decoded, the kept ones saved as JPEG files."""
    t = time.perf_counter()
    n, nxt = 0, 0.0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        if threads:
            s.thread_type = "AUTO"
        for frame in c.decode(s):
            if fps is None or frame.time >= nxt - 1e-6:
                frame.to_image().save(out / f"f{n:05d}.jpg", quality=QUALITY)
                n += 1
                if fps:
                    nxt += 1 / fps
    return time.perf_counter() - t, n


def wipe(media: Path) -> None:
    """Empty the media store, so that each run writes its frames (the store skips known files)."""
    for d in media.iterdir() if media.exists() else ():
        if d.is_dir() and len(d.name) == 2:
            shutil.rmtree(d, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60, help="video length (default 60)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case, alternating (default 3; medians)")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory (cluster + files)")
    args = ap.parse_args()

    with bench_dir("w3", args.keep) as base:
        files = readable_dir(base / "files")
        video = files / "w3.mp4"
        t = time.perf_counter()
        write_video(video, frames(args.seconds), W, H, RATE, {"preset": "veryfast", "crf": "23"})
        with av.open(str(video)) as c:
            s = c.streams.video[0]
            n_frames, keys = s.frames, sum(1 for p in c.demux(s) if p.is_keyframe)
        print(f"generated {args.seconds} s {W}x{H} {RATE} fps H.264: {n_frames} frames, {keys} keyframes, "
              f"{video.stat().st_size * 8 / args.seconds / 1e6:.1f} Mbit/s, in {time.perf_counter() - t:.1f}s", flush=True)
        warm = files / "warm.mp4"
        write_video(warm, (np.zeros((48, 64, 3), np.uint8) for _ in range(5)), 64, 48, RATE)

        with cluster(base, files, args.keep) as dsn, connect(dsn) as conn:
            print("backend warm-up (server Python + PyAV import): "
                  f"{timed(conn, 'SELECT count(*) FROM pxt.frame_iterator(%s)', (str(warm),)):.2f}s")
            conn.execute("""SELECT pxt.create_table('w3.v1', '{"video": "video"}')""")
            conn.execute("SELECT pxt.create_view('w3.frames_1fps', 'w3.v1', 'pxt.frame_iterator(video, fps => 1)')")
            conn.execute("""SELECT pxt.create_table('w3.v2', '{"video": "video"}')""")
            conn.execute("SELECT pxt.create_view('w3.frames_all', 'w3.v2', 'pxt.frame_iterator(video)')")
            media = Path(conn.execute("SELECT pxt._media_dir()").fetchone()[0])
            for label, fps, table, view in (("fps=1", 1.0, "w3.v1", "w3.frames_1fps"),
                                            ("all frames", None, "w3.v2", "w3.frames_all")):
                out = base / f"plain_{'1fps' if fps else 'all'}"
                t_plains, t_pxts, t_srfs = [], [], []
                for rep in range(args.repeat):  # alternating, each from an empty output
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir()
                    t_plain, n_plain = plain(video, out, fps)
                    t_plains.append(t_plain)
                    conn.execute(f"DELETE FROM {table}")
                    wipe(media)
                    t_pxts.append(timed(conn, f"INSERT INTO {table} (video) VALUES (%s)", (str(video),)))
                    n_pxt = conn.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
                    assert n_pxt == n_plain, (n_pxt, n_plain)
                    wipe(media)
                    t_srfs.append(timed(conn, "SELECT count(*) FROM pxt.frame_iterator(%s, fps => %s)", (str(video), fps)))
                shutil.rmtree(out)
                out.mkdir()
                t_thr, _ = plain(video, out, fps, threads=True)
                t_plain, t_pxt, t_srf = (statistics.median(x) for x in (t_plains, t_pxts, t_srfs))
                ratio = t_pxt / t_plain
                target = TARGETS[label]
                print(f"W3 {label} ({n_pxt} frames stored; median of {args.repeat}): pixelgres {t_pxt:.2f}s, "
                      f"plain PyAV loop {t_plain:.2f}s, ratio {ratio:.2f}x "
                      f"(target <= {target}x{'' if ratio <= target else ', ABOVE TARGET'})")
                print(f"   iterator alone (SELECT FROM pxt.frame_iterator) {t_srf:.2f}s = {t_srf / t_plain:.2f}x; "
                      f"view rows (insert, media check, versions) {max(t_pxt - t_srf, 0):.2f}s; "
                      f"plain loop with frame threading {t_thr:.2f}s; runs: pixelgres "
                      f"{', '.join(f'{x:.2f}' for x in t_pxts)}, plain {', '.join(f'{x:.2f}' for x in t_plains)}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
