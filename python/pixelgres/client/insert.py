"""``Table.insert``: rows from Python, pandas, CSV or Parquet into a managed table.

One transaction for the whole insert (it all lands or nothing does), in batches: per batch,
media values are resolved (passed through or uploaded, ``media.MediaBatch``), row ids are
drawn from the table's identity sequence in one call, and the rows go in with one ``COPY``
(the table's triggers validate media and compute columns as for any INSERT; batched
functions see the batch as one statement). Knowing the ids up front lets an error name the
input row, and the final count of per-cell errors read exactly the inserted rows.
"""
from __future__ import annotations

import math
from pathlib import Path

from psycopg.types.json import Jsonb
from sqlglot import exp

from . import types as T
from .dialect import to_sql
from .errors import Error, translated
from .exprs import ident
from .media import MediaBatch
from .progress import LazyBar
from .status import UpdateStatus

BATCH = 500


def _clean(v, from_frame: bool):
    if v is None:
        return None
    if from_frame:
        if isinstance(v, float) and math.isnan(v):
            return None
        if type(v).__name__ in ("NaTType", "NAType"):
            return None
        if hasattr(v, "to_pydatetime"):
            return v.to_pydatetime()
    if type(v).__module__ == "numpy" and hasattr(v, "item"):
        return v.item()
    return v


def _rows(source):
    """(iterable of dicts, total or None, base directory for relative media paths, from_frame)."""
    if isinstance(source, (str, Path)):
        p = Path(source)
        import pandas as pd

        suffix = p.suffix.lower()
        if suffix == ".csv":
            df = pd.read_csv(p)
        elif suffix in (".parquet", ".pq"):
            try:
                df = pd.read_parquet(p)
            except ImportError as e:
                raise Error(f"reading {p}: {e}", hint="pip install pyarrow") from e
        else:
            raise Error(f"insert() reads .csv and .parquet files, not {p.name!r}")
        return df.to_dict("records"), len(df), str(p.resolve().parent), True
    if type(source).__name__ == "DataFrame" and hasattr(source, "to_dict"):
        return source.to_dict("records"), len(source), None, True
    if isinstance(source, dict):
        return [source], 1, None, False
    total = len(source) if hasattr(source, "__len__") else None
    return source, total, None, False


def _batches(rows, n):
    batch = []
    for r in rows:
        batch.append(r)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def insert_from_bucket(table, uri: str, fmt: str | None = None) -> UpdateStatus:
    """A Parquet / CSV / JSON-lines file in a bucket: the server reads it (its credentials,
    its pixelgres.allowed_buckets) and inserts the rows in one statement per batch."""
    s = table._session
    cols = table._columns()
    rowid = exp.Column(this=ident("_pxt_rowid"))
    top = s.fetchone(exp.Select(expressions=[exp.func("coalesce", exp.Max(this=rowid), exp.Literal.number(0))])
                     .from_(table._from_ast()))[0]
    with translated():
        n = s.fetchone("SELECT pxt.import_rows(%s, %s, %s)", (table._path, uri, fmt))[0]
    ids = [r[0] for r in s.execute(exp.Select(expressions=[rowid]).from_(table._from_ast()).where(
        exp.GT(this=rowid.copy(), expression=exp.Placeholder())), (top,)).fetchall()]
    by_col = _errors(s, table, ids) if ids else {}
    return UpdateStatus(num_rows=n, num_excs=sum(by_col.values()), updated_cols=list(cols),
                        cols_with_excs=sorted(by_col), errors_by_column=by_col, verb="Inserted")


def insert(table, source, *, batch_size=None, show_progress=None):
    s = table._session
    cols = table._columns()
    rows, total, base_dir, from_frame = _rows(source)
    batch_size = batch_size or BATCH
    seq = s.fetchone("SELECT pg_get_serial_sequence(%s, '_pxt_rowid')", (to_sql(table._from_ast()),))[0]
    show = show_progress if show_progress is not None else (total is None or total > batch_size)
    bar = LazyBar(f"inserting into {table._name}", total, show=show)
    state = {"offset": 0, "ids": {}}

    def row_index(rowid, copy_line):
        if copy_line is not None:
            return state["offset"] + copy_line - 1
        return state["ids"].get(rowid)

    if any(c.col_type.media for c in cols.values()):
        s.ensure_helpers()  # before the transaction: a rollback must not take the session's helpers along
    media = MediaBatch(s, base_dir=base_dir)
    ids_all: list[int] = []
    n = 0
    try:
        with translated(row_index), s.conn.transaction():
            for batch in _batches(rows, batch_size):
                state["offset"] = n
                names = _columns_of(table, cols, batch, n)
                values = [[_clean(r.get(c), from_frame) for c in names] for r in batch]
                for j, c in enumerate(names):
                    if cols[c].col_type.media:
                        refs = media.resolve([v[j] for v in values],
                                             where=lambda i, c=c: f"row {n + i}, column {c!r}")
                        for v, ref in zip(values, refs):
                            v[j] = ref
                    elif cols[c].col_type == T.Json:
                        for v in values:
                            v[j] = None if v[j] is None else Jsonb(v[j])
                ids = []
                if seq:
                    ids = [r[0] for r in s.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
                                                   (seq, len(batch))).fetchall()]
                    state["ids"].update((rid, n + i) for i, rid in enumerate(ids))
                _copy(s, table, (["_pxt_rowid"] if ids else []) + names,
                      [([ids[i]] if ids else []) + v for i, v in enumerate(values)])
                ids_all += ids
                n += len(batch)
                bar.update(len(batch))
    finally:
        bar.close()
    by_col = _errors(s, table, ids_all) if ids_all else {}
    return UpdateStatus(num_rows=n, num_excs=sum(by_col.values()), updated_cols=list(cols),
                        cols_with_excs=sorted(by_col), errors_by_column=by_col,
                        uploaded_files=media.uploaded, verb="Inserted")


def _columns_of(table, cols, batch, offset) -> list[str]:
    seen: dict[str, None] = {}
    for i, r in enumerate(batch):
        if not isinstance(r, dict):
            raise Error(f"row {offset + i}: a row is a dict of column -> value, not {type(r).__name__}",
                        input_row=offset + i)
        for k in r:
            if k not in cols:
                raise Error(f"row {offset + i}: {table._schema}.{table._name} has no column {k!r} "
                            f"(columns: {', '.join(cols)})", input_row=offset + i, column=k)
            if cols[k].computed:
                raise Error(f"row {offset + i}: column {k!r} is computed; it cannot be inserted",
                            input_row=offset + i, column=k)
            seen[k] = None
    return [c for c in cols if c in seen]


def _copy(s, table, names, values) -> None:
    node = exp.Copy(this=exp.Schema(this=table._from_ast(), expressions=[ident(c) for c in names]),
                    kind=True, files=[exp.Var(this="STDIN")])
    with s.conn.cursor() as cur, cur.copy(to_sql(node)) as cp:
        for v in values:
            cp.write_row(v)


def _errors(s, table, ids) -> dict[str, int]:
    node = exp.Select(expressions=[exp.Column(this=ident("_pxt_errors"))]).from_(table._from_ast()).where(
        exp.and_(exp.EQ(this=exp.Column(this=ident("_pxt_rowid")), expression=exp.Any(this=exp.Paren(this=exp.Placeholder()))),
                 exp.Not(this=exp.Is(this=exp.Column(this=ident("_pxt_errors")), expression=exp.Null()))))
    out: dict[str, int] = {}
    for (errs,) in s.execute(node, (ids,)).fetchall():
        for col in errs or {}:
            out[col] = out.get(col, 0) + 1
    return out


