"""Media values for inserts: pass what the server can read, upload the rest by content.

The server may run on another machine, or as another OS user (the embedded cluster runs as
``postgres``), so a path the notebook can open may mean nothing to it. For one batch of
values, ``MediaBatch.resolve``:

1. passes URLs (``http(s)://``), bucket URIs (``s3://``, ``gs://``, ``az://``, ``r2://``...)
   and store references (``media://``) through; the server fetches a batch's bucket objects
   into its cache concurrently, in one call (``pxt.prefetch_media``), before the rows go in;
2. asks the server, in one call, which of the batch's local paths it can read itself
   (``pxt.media_path``, which enforces ``pixelgres.allowed_roots``) and keeps those;
3. hashes the others (and in-memory PIL images / bytes) with SHA-256, streaming, and asks,
   in one call, which ``media://<sha256>.<ext>`` the store already has (deduplication);
4. streams the missing files' bytes through one binary ``COPY`` into a session-temporary
   table and stores them all with one ``pxt.store_media`` statement, checking that each
   reference the server computed equals the client's hash.

So a batch costs at most four round trips, whatever its number of files.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
import urllib.parse
from pathlib import Path

from .errors import Error

CHUNK = 1 << 20
_OBJECTS = ("s3://", "gs://", "az://", "abfs://", "abfss://", "r2://")
_PASS = ("http://", "https://", "media://") + _OBJECTS
_SIGS = [(b"\xff\xd8\xff", "jpg"), (b"\x89PNG", "png"), (b"GIF8", "gif"), (b"%PDF", "pdf"), (b"RIFF", None),
         (b"\x1aE\xdf\xa3", "webm"), (b"ID3", "mp3"), (b"fLaC", "flac"), (b"OggS", "ogg"), (b"BM", "bmp")]


def _ext_of_bytes(data: bytes) -> str:
    for sig, ext in _SIGS:
        if data.startswith(sig):
            if ext is None:  # RIFF container
                return {b"WEBP": "webp", b"WAVE": "wav", b"AVI ": "avi"}.get(data[8:12], "bin")
            return ext
    if data[4:8] == b"ftyp":
        return "mp4"
    return "bin"


def _ext_of_path(path: str) -> str:
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    return ext if ext and ext.isalnum() and len(ext) <= 8 else "bin"


class _Item:
    """One value to upload: a local file or bytes in memory."""

    __slots__ = ("path", "data", "ext", "size", "digest")

    def __init__(self, path=None, data=None, ext="bin"):
        self.path, self.data, self.ext = path, data, ext
        self.size = len(data) if data is not None else os.path.getsize(path)
        h = hashlib.sha256()
        if data is not None:
            h.update(data)
        else:
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        self.digest = h.hexdigest()

    @property
    def ref(self) -> str:
        return f"media://{self.digest}.{self.ext}"


def _pil_bytes(img) -> tuple[bytes, str]:
    fmt = img.format if img.format in ("JPEG", "PNG", "WEBP", "GIF") else "PNG"
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue(), {"JPEG": "jpg"}.get(fmt, fmt.lower())


class MediaBatch:
    def __init__(self, session, conn=None, base_dir: str | None = None):
        self.session, self.conn = session, conn
        self.base_dir = base_dir or os.getcwd()
        self.uploaded = 0
        self.uploaded_bytes = 0

    def _classify(self, v):
        """('ref', text) | ('path', absolute path) | ('item', _Item) | ('none', None)."""
        if v is None:
            return "none", None
        if isinstance(v, Path):
            v = str(v)
        if isinstance(v, str):
            if v.startswith(_PASS):
                return "ref", v
            if v.startswith("data:"):
                head, _, payload = v.partition(",")
                data = base64.b64decode(payload) if head.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
                return "item", _Item(data=data, ext=_ext_of_bytes(data))
            if v.startswith("file://"):
                p = urllib.parse.urlparse(v)
                if p.netloc not in ("", "localhost"):
                    raise ValueError(f"file URI with a remote host is not supported: {v!r}")
                v = urllib.parse.unquote(p.path)
            elif "://" in v:
                raise ValueError(f"unsupported media URI scheme in {v!r}")
            return "path", os.path.abspath(os.path.join(self.base_dir, os.path.expanduser(v)))
        if isinstance(v, (bytes, bytearray, memoryview)):
            data = bytes(v)
            return "item", _Item(data=data, ext=_ext_of_bytes(data))
        if type(v).__module__.startswith("PIL.") and hasattr(v, "save"):
            data, ext = _pil_bytes(v)
            return "item", _Item(data=data, ext=ext)
        raise TypeError(f"a media value is a path, URL, bytes or PIL image, not {type(v).__name__}")

    def resolve(self, values: list, where=None) -> list:
        """References for ``values`` (same order). ``where(i)`` names value i in error messages."""
        where = where or (lambda i: f"value {i}")
        out: list = [None] * len(values)
        paths: dict[str, list[int]] = {}
        items: list[tuple[int, _Item]] = []
        for i, v in enumerate(values):
            try:
                kind, x = self._classify(v)
            except (ValueError, TypeError, OSError) as e:
                raise Error(f"{where(i)}: {e}") from e
            if kind == "ref":
                out[i] = x
            elif kind == "path":
                paths.setdefault(x, []).append(i)
            elif kind == "item":
                items.append((i, x))
        if paths:
            names = list(paths)
            for p, ok in zip(names, self.session.server_readable(names, conn=self.conn)):
                if ok:
                    for i in paths[p]:
                        out[i] = p
                    continue
                try:
                    item = _Item(path=p, ext=_ext_of_path(p))
                except OSError as e:
                    i = paths[p][0]
                    raise Error(f"{where(i)}: media file {p!r} is readable neither by the server nor by this "
                                f"client ({e.strerror or e})") from e
                items.extend((i, item) for i in paths[p])
        if items:
            self._upload(items, out)
        objects = [v for v in out if isinstance(v, str) and v.startswith(_OBJECTS)]
        if objects:  # failures are left to the row checks, which name the row and column
            (self.conn or self.session.conn).execute("SELECT count(*) FROM pxt.prefetch_media(%s)", (objects,))
        return out

    def _upload(self, items: list, out: list) -> None:
        by_ref: dict[str, _Item] = {}
        for _, it in items:
            by_ref.setdefault(it.ref, it)
        refs = list(by_ref)
        have = self.session.server_readable(refs, conn=self.conn)
        missing = [by_ref[r] for r, ok in zip(refs, have) if not ok]
        if missing:
            stored = self._copy(missing)
            for n, it in enumerate(missing):
                if stored.get(n) != it.ref:
                    raise Error(f"uploading {it.path or 'in-memory data'} gave {stored.get(n)!r}, expected {it.ref!r} "
                                "(did the file change while it was read?)")
            self.uploaded += len(missing)
            self.uploaded_bytes += sum(it.size for it in missing)
        for i, it in items:
            out[i] = it.ref

    def _copy(self, items: list) -> dict[int, str]:
        """Stream items through one binary COPY, then store them with one statement."""
        s = self.session
        s.ensure_helpers(self.conn)
        conn = self.conn or s.conn
        from .errors import translated

        with translated():
            with conn.transaction():
                cur = conn.cursor()
                with cur.copy("COPY pg_temp.pxt_upload (i, data, ext) FROM STDIN (FORMAT BINARY)") as cp:
                    cp.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0))
                    for n, it in enumerate(items):
                        ext = it.ext.encode()
                        cp.write(struct.pack("!hii", 3, 4, n) + struct.pack("!i", it.size))
                        if it.data is not None:
                            cp.write(it.data)
                        else:
                            left = it.size
                            with open(it.path, "rb") as f:
                                while left > 0:
                                    chunk = f.read(min(CHUNK, left))
                                    if not chunk:
                                        raise Error(f"{it.path!r} shrank while it was uploaded")
                                    cp.write(chunk)
                                    left -= len(chunk)
                        cp.write(struct.pack("!i", len(ext)) + ext)
                    cp.write(struct.pack("!h", -1))
                rows = cur.execute("WITH d AS (DELETE FROM pg_temp.pxt_upload RETURNING i, data, ext) "
                                   "SELECT i, pxt.store_media(data, ext) FROM d").fetchall()
        return dict(rows)
