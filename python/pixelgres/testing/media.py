"""Media files for tests and benchmarks, made deterministically (one place for every suite)."""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Callable, Iterable

import av
import numpy as np


def write_video(path: Path, frames: Iterable[np.ndarray], rate: int = 10, codec: str = "libx264",
                options: dict | None = None, faststart: bool = False) -> Path:
    """Encode RGB frames (HxWx3 uint8 arrays) as yuv420p, readable by the server (mode 0644).
    ``faststart`` puts the moov atom first; ``options`` are the encoder's (x264: g, bf...)."""
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if options:
            s.options = options
        for img in itertools.chain([first], frames):
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    os.chmod(path, 0o644)
    return Path(path)


def grey_video(path: Path, n: int, rate: int = 10, size: tuple[int, int] = (64, 48),
               shade: Callable[[int], int] = lambda i: (12 * i) % 252, **kw) -> Path:
    """``n`` flat grey frames of ``size`` (width, height), frame i at level ``shade(i)``."""
    w, h = size
    return write_video(path, (np.full((h, w, 3), shade(i), np.uint8) for i in range(n)), rate=rate, **kw)
