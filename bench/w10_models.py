"""W10: CLIP image embeddings through a computed column vs a plain batched script with the same
model, and cross-modal top-10 queries vs raw pgvector SQL plus the model's own time.

No CLIP weights ship on PyPI and this machine reaches nothing else, so the model is the ViT-B/32
architecture with random weights (pixelgres.testing.models.tiny_clip(full_size=True)): it costs
what the real model costs, which is what the ratios compare. Both sides use the same directory,
transformers, torch CPU and the same number of torch threads (pixelgres.model_threads), and both
load the model before timing. Each of --repeat rounds embeds its own N W1 photos:

  (a) plain: PIL open (draft-decoded to about the model's input size, as the server does),
      CLIPProcessor, get_image_features, normalise, in chunks of 64;
  (b) pixelgres: one INSERT of the N paths into a table with an embedding index on the image
      column (pxt.clip_image; queries by pxt.clip_text) -- the index's column is computed, batched;
  (c) queries: Q texts through pxt.search(..., k => 10) vs the text embedded by the plain model
      here plus the same top-10 in raw pgvector SQL (ORDER BY emb <=> $1 LIMIT 10).

    .venv/bin/python bench/w10_models.py [--n 200] [--repeat 3] [--queries 20] [--keep]
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time

from _cluster import bench_dir, cluster, connect, readable_dir, timed_backend
from _media import write_photos

from pixelgres.testing.models import tiny_clip

THREADS = 2
TARGET = 1.1


def plain_embed(model, processor, paths) -> float:
    import torch
    from PIL import Image

    side = model.config.vision_config.image_size
    t = time.perf_counter()
    for c in range(0, len(paths), 64):
        ims = []
        for p in paths[c:c + 64]:
            im = Image.open(p)
            im.draft(None, (side, side))
            ims.append(im.convert("RGB"))
        with torch.inference_mode():
            f = model.get_image_features(pixel_values=processor(images=ims, return_tensors="pt")["pixel_values"])
            torch.nn.functional.normalize(getattr(f, "pooler_output", f), dim=-1).numpy()
    return time.perf_counter() - t


def plain_text(model, processor, text: str):
    import torch

    with torch.inference_mode():
        t = processor.tokenizer([text], padding=True, truncation=True, max_length=77, return_tensors="pt")
        f = model.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"])
        return torch.nn.functional.normalize(getattr(f, "pooler_output", f), dim=-1)[0].tolist()


def queries(conn, search_conn, tbl: str, rows: str, model, processor, n: int, tag: str) -> tuple[float, float]:
    """Median seconds of n top-10 text queries through pxt.search (on search_conn), and of the
    plain model's text embedding + raw pgvector SQL on the table's rows (interleaved)."""
    q_pxt, q_raw = [], []
    for q in range(n):
        text = f"a photo of thing {tag}-{q}"  # new each time: no query cache
        t0 = time.perf_counter()
        got = [x[0] for x in search_conn.execute(
            "SELECT rowid FROM pxt.search(%s, 'image', %s, k => 10)", (tbl, text)).fetchall()]
        q_pxt.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        v = plain_text(model, processor, text)
        raw = [x[0] for x in conn.execute(
            f"SELECT _pxt_rowid FROM {rows} ORDER BY clip <=> %s::vector LIMIT 10", (str(v),)).fetchall()]
        q_raw.append(time.perf_counter() - t0)
        assert len(got) == len(raw) == 10
    return statistics.median(q_pxt), statistics.median(q_raw)


def _rss(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def spread(xs) -> str:
    return f"median {statistics.median(xs):.2f}x (min {min(xs):.2f}x, max {max(xs):.2f}x)"


@contextlib.contextmanager
def model_server(base, conn, dsn):
    """The cluster's shared model server (its own THREADS torch threads), and a connection that
    sends its CLIP calls there; the model is loaded before anything is timed."""
    from pixelgres.cluster import Cluster

    c = Cluster(base / "home")
    proc = c.start_model_server(conn.execute("SELECT current_setting('pixelgres.python_dir')").fetchone()[0],
                                threads=THREADS)
    try:
        with connect(dsn) as served:
            served.execute(f"SET pixelgres.model_server = '{c.model_socket}'")
            served.execute("SELECT pxt.clip_text('warm up', 'clip-b32')")
            yield served
    finally:
        c.stop_model_server(proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    import torch
    from transformers import CLIPModel, CLIPProcessor

    torch.set_num_threads(THREADS)
    with bench_dir("w10", args.keep) as base:
        files = readable_dir(base / "files")
        models = readable_dir(base / "models")
        t = time.perf_counter()
        path = tiny_clip(models / "clip-b32", full_size=True)
        print(f"built a random-weight ViT-B/32 CLIP in {time.perf_counter() - t:.1f}s")
        model = CLIPModel.from_pretrained(path, local_files_only=True).eval()
        processor = CLIPProcessor.from_pretrained(path, local_files_only=True)
        settings = {"pixelgres.model_dir": f"'{models}'", "pixelgres.model_threads": str(THREADS)}
        from _cluster import FAST

        with cluster(base, files, args.keep, {**FAST, **settings}) as dsn, connect(dsn) as conn, \
                model_server(base, conn, dsn) as served_conn:
            t = timed_backend(conn, "SELECT pxt.clip_text('warm up', 'clip-b32')").wall
            rss, load = conn.execute("SELECT backend_rss_mb, load_seconds FROM pxt.embedding_models() "
                                     "WHERE function = 'clip'").fetchone()
            with connect(dsn) as plain:
                plain.execute("SELECT 1")
                base_rss = _rss(plain.info.backend_pid)
            print(f"backend warm-up (server Python, torch, model load): {t:.2f}s, of which the model load "
                  f"{load:.2f}s; backend resident memory {rss:.0f} MB (a plain backend: {base_rss:.0f} MB)")
            warm = write_photos(readable_dir(files / "warm"), 1, seed=10**6)
            plain_embed(model, processor, [str(warm[0])])  # the plain side warms up too
            plain_text(model, processor, "warm up")
            ratios, q_ratios, s_ratios = [], [], []
            for r in range(args.repeat):
                paths = write_photos(readable_dir(files / f"set{r}"), args.n, seed=r * args.n)
                t_plain = plain_embed(model, processor, [str(p) for p in paths])
                tbl = f"w10.photos{r}"
                conn.execute("SELECT pxt.create_table(%s, '{\"image\": \"image\"}')", (tbl,))
                conn.execute("SELECT pxt.add_embedding_index(%s, 'image', name => 'clip', "
                             "embedding => 'pxt.clip_image(model => ''clip-b32'')', "
                             "query_embedding => 'pxt.clip_text(model => ''clip-b32'')')", (tbl,))
                t_pxt = timed_backend(conn, f"INSERT INTO {tbl} (image) SELECT unnest(%s::text[])",
                                      ([str(p) for p in paths],)).wall
                assert conn.execute(f"SELECT count(clip) FROM {tbl}").fetchone()[0] == args.n
                ratios.append(t_pxt / t_plain)
                rows = conn.execute("SELECT pxt.internal_relation(%s)::text", (tbl,)).fetchone()[0]
                q_pxt, q_raw = queries(conn, conn, tbl, rows, model, processor, args.queries, str(r))
                q_ratios.append(q_pxt / q_raw)
                print(f"  repeat {r + 1}/{args.repeat}: embed {args.n / t_pxt:.1f} vs plain {args.n / t_plain:.1f} "
                      f"images/s; query {q_pxt * 1000:.1f} ms vs raw pgvector + model {q_raw * 1000:.1f} ms",
                      flush=True)
                served = queries(conn, served_conn, tbl, rows, model, processor, args.queries, f"s{r}")
                s_ratios.append(served[0] / served[1])
                print(f"    through the model server: query {served[0] * 1000:.1f} ms vs raw pgvector + model "
                      f"{served[1] * 1000:.1f} ms", flush=True)
            m, q = statistics.median(ratios), statistics.median(q_ratios)
            print(f"W10 CLIP image embedding, computed column / plain batched script: {spread(ratios)} "
                  f"(target <= {TARGET}x{'' if m <= TARGET else ', ABOVE TARGET'})")
            print(f"W10 cross-modal top-10 query / raw pgvector + model: {spread(q_ratios)} "
                  f"(target <= {TARGET}x{'' if q <= TARGET else ', ABOVE TARGET'})")
            sq = statistics.median(s_ratios)
            print(f"W10 the same query, CLIP in the shared model server / raw pgvector + model: {spread(s_ratios)} "
                  f"(target <= {TARGET}x{'' if sq <= TARGET else ', ABOVE TARGET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
