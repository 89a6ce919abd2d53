"""W6: 200 full-size images through ``to_pytorch_dataset`` + DataLoader vs a hand-written torch
Dataset reading the same files with PIL, same run, ratio printed (target >= 1.0x).

Starts its own throwaway cluster, generates N 1024x768 photo-like JPEGs and measures one
epoch (median of --repeat, interleaved) of:

  (a) baseline: a map-style torch Dataset over the file list: PIL open, RGB, CxHxW float in [0,1];
  (b) pixelgres, paths: the images inserted by path (a directory the server may read), streamed
      with ``t.select(t.image, t.label).to_pytorch_dataset()``; the workers open the files
      themselves (same host);
  (c) pixelgres, media store: the same images inserted from a directory the server cannot read,
      so they are uploaded into the store; the workers get their bytes from the server.

All three use the same DataLoader (batch_size 16, --workers workers) and the same decode and
tensor conversion (no redundant convert('RGB') of RGB images on either side). Ratio = baseline time / pixelgres time (>= 1.0: pixelgres as fast or faster).

    .venv/bin/python bench/w6_pytorch.py [--n 200] [--workers 2] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _cluster import bench_dir, cluster, readable_dir
from _media import H, W, write_photos
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import pixelgres as pxt

TARGET = 1.0


class FilesDataset(Dataset):
    """The hand-written baseline."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        im = Image.open(self.paths[i])
        arr = np.array(im if im.mode == "RGB" else im.convert("RGB"))
        return {"image": torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0), "label": i}


def epoch(ds, workers: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    for batch in DataLoader(ds, batch_size=16, num_workers=workers):
        assert batch["image"].shape[1:] == (3, H, W)
        n += batch["image"].shape[0]
    return time.perf_counter() - t0, n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with bench_dir("w6") as base:
        shared = readable_dir(base / "files", 0o777)
        private = readable_dir(base / "private", 0o700)  # the server may not read it: inserts upload
        with cluster(base, shared, settings={"fsync": "off"}) as dsn:
            print(f"W6: {args.n} {W}x{H} JPEGs, DataLoader batch_size=16 num_workers={args.workers}, "
                  f"medians of {args.repeat}")
            paths = [str(p) for p in write_photos(shared, args.n, quality=90, blobs=False)]
            for p in paths:
                shutil.copy(p, private)
            pxt.init(dsn)
            try:
                run(args, paths, private)
            finally:
                from pixelgres.client import session

                if session._current is not None:
                    session._current.close()
    return 0


def run(args, paths: list[str], private: Path) -> None:
    by_path = pxt.create_table("by_path", {"image": pxt.Image, "label": pxt.Int})
    by_path.insert([{"image": p, "label": i} for i, p in enumerate(paths)], show_progress=False)
    stored = pxt.create_table("stored", {"image": pxt.Image, "label": pxt.Int})
    st = stored.insert([{"image": str(private / Path(p).name), "label": i} for i, p in enumerate(paths)],
                       show_progress=False)
    assert st.uploaded_files == args.n
    sets = {"base": FilesDataset(paths),
            "path": by_path.select(by_path.image, by_path.label).to_pytorch_dataset(),
            "store": stored.select(stored.image, stored.label).to_pytorch_dataset()}
    epoch(FilesDataset(paths[:32]), args.workers)  # warm the page cache and the worker start path
    times: dict[str, list] = {k: [] for k in sets}
    for _ in range(args.repeat):  # interleaved, so a busy moment of the machine hits all three alike
        for k, ds in sets.items():
            t, n = epoch(ds, args.workers)
            assert n == args.n, (k, n)
            times[k].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: sorted(b / t for b, t in zip(times["base"], times[k])) for k in ("path", "store")}
    spread = {k: f"{r[0]:.2f}-{r[-1]:.2f}x" for k, r in ratios.items()}
    print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; medians of {args.repeat} epochs each)")
    print(f"  baseline (torch Dataset + PIL)        {med['base']:7.2f} s  {args.n / med['base']:7.1f} img/s")
    r = statistics.median(ratios["path"])
    print(f"W6 pixelgres, path references: {med['path']:.2f} s, {args.n / med['path']:.1f} img/s, ratio {r:.2f}x "
          f"the baseline's speed (runs {spread['path']}) (target >= {TARGET}x{'' if r >= TARGET else ', BELOW TARGET'})")
    print(f"W6 pixelgres, media store (via server): {med['store']:.2f} s, {args.n / med['store']:.1f} img/s, ratio "
          f"{statistics.median(ratios['store']):.2f}x (runs {spread['store']})")

if __name__ == "__main__":
    sys.exit(main())
