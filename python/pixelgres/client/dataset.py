"""``to_pytorch_dataset``: a torch ``IterableDataset`` streaming a query's rows.

Each iterator (the main process, or each DataLoader worker) opens its own connection and reads
through a server-side cursor, ``batch_size`` rows per round trip, so memory stays flat for any
table. With several workers, worker k of n reads the disjoint shard ``_pxt_rowid % n = k`` of
the same query (its ORDER BY and LIMIT apply before sharding); aggregate queries have no row
ids, so worker 0 reads them whole.

Images are decoded in the iterating process (that is what DataLoader workers are for): a
reference that is a local file this process can read is opened directly; anything else
(``media://`` store files, URLs, files only the server sees) comes as bytes from the server
(``pxt.to_bytes``), one query per batch. ``image_format='pt'`` gives CxHxW float32 tensors
in [0, 1] (torchvision's ``ToTensor`` convention), ``'np'`` HxWxC uint8 arrays. Images are
upright (EXIF orientation applied, as the server's functions see them); modes other than
RGB, RGBA and L become RGB.
"""
from __future__ import annotations

import io
import os
import urllib.parse

import numpy as np
import psycopg
import torch
from torch.utils.data import IterableDataset, get_worker_info

from . import types as T
from .dialect import parse, to_sql

_FETCH = ("SELECT u.o, pxt.to_bytes(u.r::pxt.image) FROM unnest(%s::text[]) WITH ORDINALITY AS u(r, o)")


def _local(ref: str) -> str | None:
    if ref.startswith("file://"):
        ref = urllib.parse.unquote(urllib.parse.urlparse(ref).path)
    if ref.startswith("/") and os.access(ref, os.R_OK):
        return ref
    return None


def decode_image(src, image_format: str):
    """An image file (path or bytes) as a tensor or array (see the module docstring)."""
    from PIL import Image, ImageOps

    im = Image.open(src if isinstance(src, str) else io.BytesIO(src))
    if im.getexif().get(0x0112, 1) not in (1, None):
        im = ImageOps.exif_transpose(im)
    if im.mode not in ("RGB", "RGBA", "L"):
        im = im.convert("RGB")
    arr = np.array(im)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if image_format == "np":
        return arr
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)


class PixelgresDataset(IterableDataset):
    def __init__(self, dsn: str, node, cols, *, image_format: str = "pt", shardable: bool = True,
                 batch_size: int = 64, setup=()):
        super().__init__()
        if image_format not in ("pt", "np"):
            raise ValueError("image_format is 'pt' (CxHxW float tensors in [0,1]) or 'np' (HxWxC uint8 arrays)")
        self.dsn, self.sql = dsn, to_sql(node)
        self.names = [n for n, _ in cols]
        self.images = [t == T.Image for _, t in cols]
        self.image_format, self.shardable, self.batch_size = image_format, shardable, batch_size
        self.setup = list(setup)

    def _sql_for(self, worker: int, workers: int) -> str:
        if workers <= 1 or not self.shardable:
            return self.sql
        from sqlglot import exp

        inner = parse(self.sql)
        rowid = exp.Column(this=exp.Identifier(this="_pxt_rowid", quoted=True),
                           table=exp.Identifier(this="q", quoted=True))
        node = exp.select(exp.Star()).from_(exp.Subquery(this=inner, alias=exp.TableAlias(
            this=exp.Identifier(this="q", quoted=True)))).where(
            exp.EQ(this=exp.Paren(this=exp.Mod(this=rowid, expression=exp.Literal.number(workers))),
                   expression=exp.Literal.number(worker)))
        return to_sql(node)

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        if workers > 1 and not self.shardable and worker != 0:
            return
        conn = psycopg.connect(self.dsn)
        try:
            for stmt, params in self.setup:
                conn.execute(stmt, params)
            with conn.cursor(name=f"pxt_dataset_{worker}") as cur:
                cur.itersize = self.batch_size
                cur.execute(self._sql_for(worker, workers))
                while rows := cur.fetchmany(self.batch_size):
                    yield from self._convert(conn, rows)
        finally:
            conn.close()

    def _convert(self, conn, rows):
        remote: dict[str, None] = {}
        for r in rows:
            for i, is_img in enumerate(self.images):
                if is_img and r[i] is not None and _local(r[i]) is None:
                    remote[r[i]] = None
        data = {}
        if remote:
            refs = list(remote)
            for o, b in conn.execute(_FETCH, (refs,)).fetchall():
                data[refs[o - 1]] = bytes(b)
        for r in rows:
            out = {}
            for i, name in enumerate(self.names):
                v = r[i]
                if self.images[i] and v is not None:
                    v = decode_image(_local(v) or data[v], self.image_format)
                elif self.image_format == "pt" and isinstance(v, np.ndarray):
                    v = torch.from_numpy(v)
                out[name] = v
            yield out
