"""W6: 200 full-size images through ``to_pytorch_dataset`` + DataLoader vs a hand-written torch
Dataset reading the same files with PIL, same run, ratio printed (target >= 1.0x).

Starts its own throwaway cluster, generates N 1024x768 photo-like JPEGs and measures one
epoch (best of --repeat) of:

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
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))
import pixelgres as pxt  # noqa: E402
from pixelgres.cluster import Cluster  # noqa: E402

W, H = 1024, 768
TARGET = 1.0


def photo_like(i: int) -> Image.Image:
    """Smooth gradients plus shapes plus sensor-like noise, so decoding costs what a photo's does."""
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:H // 8, 0:W // 8].astype(np.float32) * 8
    img = np.stack([128 + rng.uniform(-0.2, 0.2) * (x - W / 2) + rng.uniform(-0.2, 0.2) * (y - H / 2)
                    + 40 * np.sin(x / rng.uniform(40, 160)) for _ in range(3)], -1)
    base = np.array(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).resize((W, H), Image.BICUBIC))
    for _ in range(5):
        x0, y0 = int(rng.integers(0, W - 64)), int(rng.integers(0, H - 64))
        base[y0:y0 + int(rng.integers(32, 300)), x0:x0 + int(rng.integers(32, 300))] = rng.integers(0, 256, 3)
    noise = rng.integers(-12, 13, (H, W, 3), dtype=np.int16)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


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
    base = Path(tempfile.mkdtemp(prefix="pxt-w6-"))
    os.chmod(base, 0o755)
    shared = base / "files"
    shared.mkdir()
    os.chmod(shared, 0o777)
    private = Path(tempfile.mkdtemp(prefix="pxt-w6-private-"))
    os.chmod(private, 0o700)
    cluster = Cluster(base / "home", settings={"pixelgres.allowed_roots": f"'{shared}'", "fsync": "off"}).start()
    try:
        print(f"W6: {args.n} {W}x{H} JPEGs, DataLoader batch_size=16 num_workers={args.workers}, best of {args.repeat}")
        paths = []
        for i in range(args.n):
            p = shared / f"img{i:04d}.jpg"
            photo_like(i).save(p, quality=90)
            shutil.copy(p, private / p.name)
            paths.append(str(p))
        pxt.init(cluster.ensure_database("w6"))
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
        t_base, t_path, t_store = (min(times[k]) for k in ("base", "path", "store"))
        print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        print(f"  baseline (torch Dataset + PIL)        {t_base:7.2f} s  {args.n / t_base:7.1f} img/s")
        print(f"  pixelgres, path references            {t_path:7.2f} s  {args.n / t_path:7.1f} img/s  "
              f"ratio {t_base / t_path:.2f}x (target >= {TARGET}x)")
        print(f"  pixelgres, media store (via server)   {t_store:7.2f} s  {args.n / t_store:7.1f} img/s  "
              f"ratio {t_base / t_store:.2f}x")
    finally:
        from pixelgres.client import session

        if session._current is not None:
            session._current.close()
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
