"""Media files for tests and benchmarks, made deterministically (one place for every suite)."""
from __future__ import annotations

import functools
import itertools
import os
import struct
import zlib
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


# --- bad images, and documents with structure ---------------------------------------------------
def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.lru_cache(maxsize=None)
def bomb_png(side: int = 30000, complete: bool = True) -> bytes:
    """A real side x side 1-bit PNG (all black, ~110 KB, 900 M pixels decoded), or with
    complete=False only its header and a scrap of image data."""
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
    if complete:
        row = b"\x00" * (1 + (side + 7) // 8)
        z = zlib.compressobj(6)
        data = b"".join(z.compress(row * 1000) for _ in range(side // 1000))
        data += z.compress(row * (side % 1000)) + z.flush()
    else:
        data = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + ihdr + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def garble(data: bytes, start: int, n: int, seed: int = 7) -> bytes:
    out = bytearray(data)
    out[start:start + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    return bytes(out)


HTML = """<!doctype html><html><head><title>Field Guide</title><style>p {color: red}</style></head>
<body><h1>Birds</h1><p>Birds fly. Most of them do.</p><h2>Owls</h2><p>Owls hunt at night.</p>
<ul><li>Barn owl</li><li>Snowy owl</li></ul><script>var hidden = "not text";</script>
<h2>Gulls</h2><div>Gulls <b>live</b> by the sea.</div><h1>Fish</h1><p>Fish swim.</p></body></html>"""

MARKDOWN = """# Manual

Welcome to the **manual**. See [the site](http://example.com).

## Install

Run the installer.
Then restart.

```
make install
```

Usage
-----

Call it. Twice!
"""
