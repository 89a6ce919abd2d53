"""Tabular files: stream rows to Parquet, read rows from Parquet, CSV and JSON lines.

``pxt.export_parquet(query, destination)`` and ``pxt.import_rows(table, uri)`` are built on this
module. The database side (plpy cursors, uploads to buckets) lives elsewhere: this module never
imports ``plpy`` and works without a database. Nothing here holds a whole table: a ParquetSink
writes each batch it is given as its own row group, and read_rows yields lists of at most
``batch_rows`` rows, so memory stays about one batch.

Why pyarrow: it is the reference Parquet implementation (Apache Arrow's C++ library), it has a
streaming writer (ParquetWriter) and streaming readers (ParquetFile.iter_batches, csv.open_csv),
and it is one self-contained wheel with no system library to install next to PostgreSQL.

Why numeric is a string: a PostgreSQL numeric has up to 131072 digits before the point and 16383
after, NaN and +-Infinity, and a column without a typmod has no fixed scale at all. Arrow's
decimal128/256 need one precision and scale per column and stop at 76 digits. The text form is
exact for every value, and PostgreSQL casts it back on import.

Why embedded bytes go in a sibling column: a media value is a URI, and the URI stays the column's
value, so a file imports back into the same table. ``<name>__bytes`` carries the media itself for
readers that cannot reach the URI. It is marked in its field metadata, so read_rows drops it (and
never reads it: Parquet is columnar), and a consumer that does not want it can skip it the same way.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
from typing import Callable, Iterator
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

FORMATS = ("parquet", "csv", "jsonl")
_ALIASES = {"ndjson": "jsonl"}
_EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv",
               ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}  # .json must be JSON lines
EMBED_KEY = b"pixelgres.embedded_from"  # field metadata of a "<name>__bytes" column
COLUMNS_KEY = b"pixelgres.columns"      # schema metadata: [[name, PostgreSQL type], ...]

_STRINGS = ("text", "character varying", "character", "bpchar", "name", '"char"', "numeric", "json", "jsonb",
            "uuid", "pxt.image", "pxt.video", "pxt.audio", "pxt.document")  # media values are URIs
ARROW_TYPES: dict[str, pa.DataType] = {  # keys as format_type() prints them, typmods removed
    **{t: pa.string() for t in _STRINGS},
    "smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(),
    "real": pa.float32(), "double precision": pa.float64(), "boolean": pa.bool_(), "date": pa.date32(),
    "timestamp without time zone": pa.timestamp("us"), "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "bytea": pa.binary(),
    # pgvector, without a dimension; vector(n) / halfvec(n) become fixed_size_list(float32, n)
    # (every half-precision value is exact in float32, and float32 is what every reader has)
    "vector": pa.list_(pa.float32()), "halfvec": pa.list_(pa.float32()),
}
_TYPMOD = re.compile(r"\s*\(\s*(\d+)\s*(?:,\s*-?\d+\s*)?\)")


def _arrow_type(pg_type: str) -> pa.DataType | None:
    t = " ".join(str(pg_type).strip().lower().split())
    if t.endswith("[]"):  # format_type prints one [] whatever the dimensions
        item = _arrow_type(t[:-2])
        return None if item is None else pa.list_(item)
    m = _TYPMOD.search(t)
    base = _TYPMOD.sub("", t, count=1)
    if base in ("vector", "halfvec") and m:
        return pa.list_(pa.float32(), int(m.group(1)))
    return ARROW_TYPES.get(base)


def _check_names(names, what: str = "columns") -> None:
    for i, name in enumerate(names):
        if not isinstance(name, str) or name == "":
            raise ValueError(f"{what}: a column name must be a non-empty string, got {name!r}")
        if name in names[:i]:
            raise ValueError(f"{what}: duplicate column name {name!r}")


def arrow_schema(columns: list[tuple[str, str]]) -> pa.Schema:
    """The Arrow schema for (name, PostgreSQL type) columns; an unknown type is a string (its text)."""
    columns = [tuple(c) for c in columns]
    _check_names([c[0] for c in columns])
    fields = [pa.field(name, _arrow_type(pg) or pa.string()) for name, pg in columns]
    return pa.schema(fields, metadata={COLUMNS_KEY: json.dumps([[n, str(t)] for n, t in columns])})


# --- Python values (as plpython gives them) -> Arrow values --------------------------------------
def _text(v):
    if isinstance(v, str):
        return v
    if isinstance(v, (dict, list)):  # json/jsonb through a transform, or an array of an unknown type
        return json.dumps(v, ensure_ascii=False)
    return str(v)  # Decimal (exact), UUID, anything else: its text form


def _int(v):
    if not isinstance(v, str) and int(v) != v:
        raise ValueError(f"{v!r} is not an integer")
    return int(v)


def _bool(v):
    if not isinstance(v, bool):  # bool("f") is True: take only real booleans
        raise TypeError(f"expected a boolean, got {type(v).__name__}")
    return v


def _date(v):
    if isinstance(v, str):
        v = dt.date.fromisoformat(v.strip())
    return v.date() if isinstance(v, dt.datetime) else v


def _timestamp(v, utc: bool):
    if isinstance(v, str):
        v = dt.datetime.fromisoformat(v.strip())
    elif isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        v = dt.datetime.combine(v, dt.time())
    if not isinstance(v, dt.datetime):
        raise TypeError(f"expected a datetime, got {type(v).__name__}")
    if utc:  # a naive value for timestamptz is taken as UTC
        return v.replace(tzinfo=dt.timezone.utc) if v.tzinfo is None else v.astimezone(dt.timezone.utc)
    return v.replace(tzinfo=None)  # timestamp without time zone: the wall-clock time


def _bytes(v):
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(v).__name__}")
    return bytes(v)


def _floats(v, size: int | None):
    if isinstance(v, str):  # pgvector's text form: "[1,2,3]"
        s = v.strip()
        if not (s.startswith("[") and s.endswith("]")):
            raise ValueError(f"not a vector: {v[:40]!r}")
        v = s[1:-1].split(",") if s[1:-1].strip() else []
    out = [float(x) for x in v]
    if size is not None and len(out) != size:
        raise ValueError(f"expected {size} dimensions, got {len(out)}")
    return out


def _converter(t: pa.DataType) -> Callable:
    if pa.types.is_fixed_size_list(t):
        return lambda v: _floats(v, t.list_size)
    if pa.types.is_list(t):
        item, floats = _converter(t.value_type), pa.types.is_floating(t.value_type)

        def array(v):
            if isinstance(v, str) and floats:
                return _floats(v, None)
            if isinstance(v, (str, bytes, dict)):
                raise TypeError(f"expected a list, got {type(v).__name__}")
            return [None if x is None else item(x) for x in v]
        return array
    if pa.types.is_timestamp(t):
        return lambda v: _timestamp(v, t.tz is not None)
    kinds = ((pa.types.is_integer, _int), (pa.types.is_floating, float), (pa.types.is_boolean, _bool),
             (pa.types.is_date, _date), (pa.types.is_binary, _bytes))
    return next((fn for test, fn in kinds if test(t)), _text)


class ParquetSink:
    """Writes batches of rows (tuples in column order, or dicts) to a local .parquet file as they come,
    one row group per batch, so memory stays one batch. The file appears at ``path`` only when close()
    succeeds; until then it is ``<path>.tmp-<random>``, removed on abort or on an exception in ``with``."""

    def __init__(self, path: str, columns: list[tuple[str, str]], *,
                 embed: dict[str, Callable] | None = None, compression: str = "zstd"):
        self.path, self._writer, self._result, self._rows = os.fspath(path), None, None, 0
        base = arrow_schema(columns)
        self._embed = dict(embed or {})
        for name, fn in self._embed.items():
            if name not in base.names:
                raise ValueError(f"embed: {name!r} is not one of the columns {base.names}")
            if f"{name}__bytes" in base.names:
                raise ValueError(f"embed: {name!r} would add {name + '__bytes'!r}, which is already a column")
            if not callable(fn):
                raise ValueError(f"embed: the function for {name!r} is not callable")
        self._fields = list(base)
        self._convs = [_converter(f.type) for f in base]
        fields = []
        for f in base:
            fields.append(f)
            if f.name in self._embed:  # large_binary: a batch of videos can pass 2 GiB
                fields.append(pa.field(f"{f.name}__bytes", pa.large_binary(), metadata={EMBED_KEY: f.name.encode()}))
        self.schema = pa.schema(fields, metadata=base.metadata)
        self._tmp = f"{self.path}.tmp-{secrets.token_hex(8)}"
        try:
            self._writer = pq.ParquetWriter(self._tmp, self.schema, compression=compression)
        except BaseException as e:
            _remove(self._tmp)
            if isinstance(e, pa.ArrowException) and not isinstance(e, OSError):
                raise ValueError(f"{self.path}: cannot write Parquet: {e}") from e
            raise

    def _row(self, row, n: int) -> tuple:
        names = [f.name for f in self._fields]
        if isinstance(row, dict):
            extra = [k for k in row if k not in names]
            if extra:
                raise ValueError(f"{self.path}: row {n}: unknown column(s) {extra}")
            return tuple(row.get(name) for name in names)
        row = tuple(row)
        if len(row) != len(names):
            raise ValueError(f"{self.path}: row {n}: {len(row)} values for {len(names)} columns")
        return row

    def write(self, rows) -> None:
        if self._writer is None:
            raise ValueError(f"{self.path}: the sink is closed")
        rows = [self._row(r, self._rows + n + 1) for n, r in enumerate(rows)]
        if not rows:
            return
        arrays = []
        for i, (field, conv) in enumerate(zip(self._fields, self._convs)):
            values = []
            for n, row in enumerate(rows):
                try:
                    values.append(None if row[i] is None else conv(row[i]))
                except (TypeError, ValueError, ArithmeticError) as e:
                    raise ValueError(f"{self.path}: column {field.name!r}, row {self._rows + n + 1}: {e}") from e
            try:
                arrays.append(pa.array(values, type=field.type))
            except (pa.ArrowException, TypeError, ArithmeticError) as e:
                raise ValueError(f"{self.path}: column {field.name!r}: {e}") from e
            if field.name in self._embed:
                arrays.append(pa.array([self._embedded(field.name, v) for v in values], type=pa.large_binary()))
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self._rows += len(rows)

    def _embedded(self, name: str, value):
        data = None if value is None else self._embed[name](value)
        if data is None or isinstance(data, (bytes, bytearray, memoryview)):
            return None if data is None else bytes(data)
        raise ValueError(f"{self.path}: embed function for {name!r} returned {type(data).__name__}, not bytes")

    def close(self) -> dict:
        """Finish the file and move it into place: {"rows", "row_groups", "bytes"}. Idempotent."""
        if self._result is not None:
            return dict(self._result)
        if self._writer is None:
            raise ValueError(f"{self.path}: the sink was aborted")
        try:
            self._writer.close()
            groups = pq.read_metadata(self._tmp).num_row_groups
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._writer = None
        self._result = {"rows": self._rows, "row_groups": groups, "bytes": os.path.getsize(self.path)}
        return dict(self._result)

    def abort(self) -> None:
        """Drop the partial file; the sink cannot be written to afterwards."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
            _remove(self._tmp)

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close() if exc_type is None else self.abort()

    def __del__(self):  # dropped without close(): no temp file left behind
        if getattr(self, "_writer", None) is not None:
            self.abort()


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


# --- reading ---------------------------------------------------------------------------------------
def infer_format(name: str) -> str:
    """The format of a file or URI from its extension (a URI's query string is ignored)."""
    path = (urlsplit(name).path if "://" in name else name).lower()
    for ext, fmt in _EXTENSIONS.items():
        if path.endswith(ext):
            return fmt
    raise ValueError(f"cannot tell the format of {name!r} from its extension (expected one of "
                     f"{', '.join(_EXTENSIONS)}); give the format: parquet, csv or jsonl (alias ndjson)")


def read_rows(path: str, fmt: str | None = None, *, batch_rows: int = 1000) -> Iterator[list[dict]]:
    """Yield the rows of a file as lists of at most ``batch_rows`` dicts. The format and batch size
    are checked now; the file is opened on the first next()."""
    path = os.fspath(path)
    if fmt is None:
        fmt = infer_format(path)
    else:
        fmt = _ALIASES.get(str(fmt).strip().lower(), str(fmt).strip().lower())
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}: expected one of parquet, csv, jsonl (alias ndjson)")
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"batch_rows must be a positive integer, got {batch_rows!r}")
    chunks = {"parquet": _parquet, "csv": _csv, "jsonl": _jsonl}[fmt](path, batch_rows)
    return _rebatch(_guard(path, fmt, chunks), batch_rows)


def _guard(path: str, fmt: str, chunks):
    try:
        yield from chunks
    except pa.ArrowException as e:  # ArrowInvalid and friends: say which file, in plain words
        if isinstance(e, OSError):
            raise
        label = {"parquet": "Parquet", "csv": "CSV", "jsonl": "JSON lines"}[fmt]
        raise ValueError(f"{path}: malformed {label} file: {e}") from e


def _rebatch(chunks, size: int):
    buf: list = []
    for chunk in chunks:
        buf.extend(chunk)
        while len(buf) >= size:
            yield buf[:size]
            del buf[:size]
    if buf:
        yield buf


def _parquet(path: str, size: int):
    f = pq.ParquetFile(path)
    try:
        fields = list(f.schema_arrow)
        keep = [x.name for x in fields if not (x.metadata and EMBED_KEY in x.metadata)]
        for batch in f.iter_batches(batch_size=size, columns=None if len(keep) == len(fields) else keep):
            yield batch.to_pylist()
    finally:
        f.close()


def _csv(path: str, size: int):
    read = pcsv.ReadOptions(block_size=1 << 20)
    parse = pcsv.ParseOptions(newlines_in_values=True)
    probe = pcsv.open_csv(path, read_options=read, parse_options=parse)  # the header, as pyarrow parses it
    names = probe.schema.names
    probe.close()
    _check_names(names, f"{path}: CSV header")
    # every column a string (PostgreSQL casts on insert); like COPY CSV, an unquoted empty field is NULL
    # and a quoted one ("") is the empty string
    convert = pcsv.ConvertOptions(column_types={n: pa.string() for n in names}, null_values=[""],
                                  strings_can_be_null=True, quoted_strings_can_be_null=False)
    reader = pcsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    try:
        for batch in reader:
            yield batch.to_pylist()
    finally:
        reader.close()


_JSON_KINDS = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number",
               type(None): "null"}


def _jsonl(path: str, size: int):  # one row at a time: _rebatch makes the batches
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}: line {lineno}: not UTF-8 ({e.reason})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: line {lineno}: not valid JSON ({e.msg}, column {e.colno}); "
                                 "JSON lines means one object per line") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}: line {lineno}: expected a JSON object, got {_JSON_KINDS[type(obj)]}")
            yield [obj]
