"""Sample media for the benchmarks: photo-like JPEGs and synthetic H.264 videos, readable by the server."""
import os
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 1024, 768  # the photos' size


def photo_like(i: int, blobs: bool = True) -> Image.Image:
    """A 1024x768 RGB image with smooth gradients, a few hard-edged shapes and sensor-like noise,
    so that decoding costs what a photo's does; blobs adds a phase per channel and soft blobs
    (W1's photos; W6's have neither)."""
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:H // 8, 0:W // 8].astype(np.float32) * 8  # the smooth part at low resolution
    if blobs:
        img = np.empty((H // 8, W // 8, 3), np.float32)
        for c in range(3):
            a, b, p = rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25), rng.uniform(0, 6.28)
            img[..., c] = 128 + a * (x - W / 2) + b * (y - H / 2) + 40 * np.sin(x / rng.uniform(40, 160) + p)
        for _ in range(6):  # soft blobs ("objects")
            cx, cy, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(40, 200)
            img += np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None] * rng.uniform(-90, 90, 3)
    else:
        img = np.stack([128 + rng.uniform(-0.2, 0.2) * (x - W / 2) + rng.uniform(-0.2, 0.2) * (y - H / 2)
                        + 40 * np.sin(x / rng.uniform(40, 160)) for _ in range(3)], -1)
    base = np.array(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").resize((W, H), Image.BICUBIC))
    for _ in range(5):  # hard-edged shapes: the edges real photos have
        x0, y0 = int(rng.integers(0, W - 64)), int(rng.integers(0, H - 64))
        base[y0:y0 + int(rng.integers(32, 300)), x0:x0 + int(rng.integers(32, 300))] = rng.integers(0, 256, 3)
    noise = rng.integers(-12, 13, (H, W, 3), dtype=np.int16)  # texture: the entropy decoder has work to do
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def write_photos(d: Path, n: int, seed: int = 0, quality: int = 85, blobs: bool = True) -> list[Path]:
    """n photo-like JPEGs in d (photo seed+i), readable by the server."""
    paths = []
    for i in range(n):
        p = d / f"photo_{i:05d}.jpg"
        photo_like(seed + i, blobs).save(p, "JPEG", quality=quality)
        os.chmod(p, 0o644)
        paths.append(p)
    return paths


def write_video(path: Path, frames, width: int, height: int, rate: int, options: dict | None = None) -> None:
    """Encode RGB frames (HxWx3 uint8 arrays of height x width) as H.264 (yuv420p), readable by the server."""
    from pixelgres.testing.media import write_video as write

    write(path, frames, rate=rate, options=options)
