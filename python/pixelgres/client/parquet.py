"""``Query.to_parquet`` to a local file: rows streamed from a server-side cursor into a
Parquet file, one row group per batch, so memory stays one batch for any table.

The first batch fixes the Arrow schema (pyarrow's inference); later batches are cast to it.
The file appears only when complete (a temporary file renamed into place).
"""
from __future__ import annotations

import os
import secrets

from .errors import Error


def write_local(rows, names: list[str], destination, batch_size: int) -> dict:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise Error(f"to_parquet needs pyarrow: {e}", hint="pip install pyarrow") from e
    path = os.path.abspath(os.fspath(destination))
    tmp = f"{path}.tmp-{secrets.token_hex(6)}"
    writer, n, groups, batch = None, 0, 0, []

    def flush():
        nonlocal writer, n, groups
        table = pa.Table.from_pylist(batch, schema=writer.schema if writer else None)
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
        writer.write_table(table)
        n, groups = n + len(batch), groups + 1
        batch.clear()

    try:
        for r in rows:
            batch.append({k: _plain(r[k]) for k in names})
            if len(batch) >= batch_size:
                flush()
        if batch or writer is None:
            if writer is None and not batch:  # no rows: an empty file with untyped columns
                writer = pq.ParquetWriter(tmp, pa.schema([(k, pa.null()) for k in names]), compression="zstd")
            else:
                flush()
        writer.close()
        os.replace(tmp, path)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise Error(f"to_parquet {path}: a later batch does not fit the types of the first ({e})") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"destination": path, "rows": n, "row_groups": groups, "bytes": os.path.getsize(path)}


def _plain(v):
    """Values pyarrow takes: pgvector's numpy arrays as lists, Decimal as exact text."""
    if type(v).__module__ == "numpy" and hasattr(v, "tolist"):
        return v.tolist()
    if type(v).__name__ == "Decimal":
        return str(v)
    return v
