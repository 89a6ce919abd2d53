"""``pxt.export_parquet`` and ``pxt.import_rows``: query results to Parquet, files back to rows.

The file is local to the server or an object in a bucket (``pixelgres.allowed_buckets``).
Local files follow COPY's rule: only members of ``pg_write_server_files`` (export) or
``pg_read_server_files`` (import) may name one. Both stream: rows go through a cursor, one
batch at a time, into a Parquet row group (``tabular.ParquetSink``); a bucket export is
written to a temporary file first and uploaded whole when complete, so the object is complete
or absent. Media columns are exported as their URIs, and with ``embed_media`` also as their
bytes (a ``<column>__bytes`` column), which an import ignores: the URI is the value.
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
import shutil
import tempfile

import plpy

from . import tabular
from .catalog import display_name, managed
from .core.errors import MediaError
from .core.errors import fail as _fail
from .core.spi import one, qualified
from .media import buckets, objects
from .media.gucs import media_dir
from .media.store import local_path
from .sqlgen import ddl as gen

BATCH = 1000
MEDIA_TYPES = ("pxt.image", "pxt.video", "pxt.audio", "pxt.document")


def _may(role: str) -> bool:
    return one("SELECT pg_has_role(current_user, $1, 'MEMBER') AS ok", role)["ok"]


def _local(path: str, role: str, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        _fail(f"{what} must be an absolute server path or an object-store URI, not {path!r}")
    if not _may(role):
        _fail(f"{what} {path!r} is a server file: only members of {role} may name one",
              hint="use a bucket URI (pixelgres.allowed_buckets), or export from the client (Table.to_parquet)",
              sqlstate="42501")
    return os.path.realpath(path)


@contextlib.contextmanager
def _scratch():
    d = tempfile.mkdtemp(prefix=".export-", dir=media_dir())
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _checked(uri: str) -> str:
    try:
        return str(buckets.check(uri))
    except MediaError as e:
        _fail(str(e), sqlstate="22023")


# --- export ---------------------------------------------------------------------------------
def export_parquet(query: str, destination: str, embed_media: bool = False) -> dict:
    """Write the rows of ``query`` to ``destination``. The query runs with the caller's rights
    (as COPY (query) TO would) and must be one query: it becomes a temporary view, which
    PostgreSQL refuses for anything that writes, and its columns' types come from the view."""
    bucket = objects.is_object_uri(destination)
    target = _checked(destination) if bucket else _local(destination, "pg_write_server_files", "destination")
    view = gen.Identifier("pg_temp", "pxt_export_" + secrets.token_hex(6))
    try:
        plpy.cursor(plpy.prepare(query)).close()  # one statement: a multi-query plan cannot be a cursor
        plpy.execute(gen.create_temp_view(view, gen.TrustedExpression(
            query, "pxt.export_parquet's query: one statement (opened as a cursor above), and a view body, "
                   "so PostgreSQL accepts nothing but a query")).as_string())
    except plpy.SPIError as e:
        _fail(f"export query: {e.args[0] if e.args else e}")
    try:
        return _export(view, target, bucket, destination, embed_media)
    finally:
        plpy.execute(gen.drop_view(view, if_exists=True).as_string())


def _export(view, target: str, bucket: bool, destination: str, embed_media: bool) -> dict:
    columns = [(r["name"], _pxt_type(r["type"])) for r in plpy.execute(plpy.prepare(
        "SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute "
        "WHERE attrelid = $1::regclass AND attnum > 0 ORDER BY attnum", ["text"]), [view.as_string()])]
    names = [n for n, _ in columns]  # distinct: a view's columns are
    embed = {name: _media_bytes for name, t in columns if t in MEDIA_TYPES} if embed_media else None
    with _scratch() as tmp:
        path = os.path.join(tmp, "export.parquet") if bucket else target
        cursor = plpy.cursor(gen.select_all(view).as_string())
        try:
            with tabular.ParquetSink(path, columns, embed=embed) as sink:
                while batch := cursor.fetch(BATCH):
                    sink.write([tuple(r[n] for n in names) for r in batch])
                stats = sink.close()
        except ValueError as e:
            _fail(f"export to {objects.display(destination)}: {e}", sqlstate="22023")
        if bucket:
            try:
                objects.put(target, pathlib.Path(path), buckets.settings_for(buckets.parse(target)), overwrite=True)
            except objects.ObjectStoreError as e:
                _fail(str(e), sqlstate="22023")
    return {"destination": target, **stats}


def _pxt_type(t: str) -> str:
    """format_type names a domain as the search path sees it: 'image' or 'pxt.image'."""
    return "pxt." + t if "pxt." + t in MEDIA_TYPES else t


def _media_bytes(uri):
    with open(local_path(uri), "rb") as f:
        return f.read()


# --- import ---------------------------------------------------------------------------------
def import_rows(table: str, source: str, fmt: str | None = None) -> int:
    """Insert the rows of a Parquet, CSV or JSON-lines file into a managed table, as INSERTs
    (media checks, computed columns and a new version, as for any insert); returns the count.
    The table's computed and system (``_pxt_*``) columns in the file are skipped (computed
    again), so an export of a table imports back into it; a column the table does not have is
    an error."""
    oid = managed(table)
    bucket = objects.is_object_uri(source)
    src = _checked(source) if bucket else _local(source, "pg_read_server_files", "source")
    try:
        fmt = tabular.infer_format(src) if fmt is None else fmt
    except ValueError as e:
        _fail(str(e))
    defs = {r["name"]: (r["computed"], r["type"]) for r in plpy.execute(plpy.prepare(
        "SELECT d.name, d.expr IS NOT NULL AS computed, format_type(a.atttypid, a.atttypmod) AS type "
        "FROM pxt.column_defs d JOIN pg_attribute a ON a.attrelid = d.relid AND a.attnum = d.attnum "
        "WHERE d.relid = $1 AND d.dropped_at IS NULL", ["oid"]), [oid])}
    name = display_name(oid)
    with _scratch() as tmp:
        path = src
        if bucket:
            path = os.path.join(tmp, "import" + os.path.splitext(src)[1][:10])
            try:
                objects.download(src, path, buckets.max_bytes(), buckets.settings_for(buckets.parse(src)))
            except objects.ObjectStoreError as e:
                _fail(str(e), sqlstate="22023")
        n, plans = 0, {}
        try:
            for batch in tabular.read_rows(path, fmt, batch_rows=BATCH):
                keys = tuple(dict.fromkeys(k for r in batch for k in r if not k.startswith("_pxt_")))
                unknown = [c for c in keys if c not in defs]
                if unknown:
                    _fail(f"{objects.display(source)}: {unknown} are not columns of {name}")
                cols = tuple(c for c in keys if not defs[c][0])  # computed ones are computed again
                if not cols:
                    _fail(f"{objects.display(source)}: no input column of {name} in the file")
                plan = plans.get(cols)
                if plan is None:
                    stmt = gen.insert_json_rows(gen.parse_name(qualified(oid)), cols)
                    plan = plans[cols] = plpy.prepare(stmt.as_string(), ["jsonb"])
                plpy.execute(plan, [_json(batch, {c for c in cols if defs[c][1] in ("json", "jsonb")})])
                n += len(batch)
        except ValueError as e:
            _fail(f"import from {objects.display(source)}: {e}", sqlstate="22023")
    return n


def _json(rows: list[dict], json_columns: set) -> str:
    """The batch as the jsonb jsonb_populate_recordset reads: bytes as bytea's hex text, and
    JSON that a file holds as text (Parquet, CSV) as the JSON it spells."""
    def text(v):
        return "\\x" + bytes(v).hex() if isinstance(v, (bytes, bytearray, memoryview)) else str(v)
    if json_columns:
        rows = [{k: _parsed(v) if k in json_columns else v for k, v in r.items()} for r in rows]
    return json.dumps(rows, default=text)


def _parsed(v):
    if not isinstance(v, str):
        return v
    try:
        return json.loads(v)
    except ValueError:
        return v  # not JSON text: the string itself
