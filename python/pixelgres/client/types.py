"""Column types: ``pxt.Image``, ``pxt.String``... and their PostgreSQL spelling.

A type is a small immutable object: ``name`` is what ``pxt.create_table`` takes in its JSON
schema (the server resolves it), ``pg`` the PostgreSQL type it becomes. Types read back from
the catalog (``pxt.columns``) map to the same objects, so ``t.image.col_type is pxt.Image``.
"""
from __future__ import annotations

import datetime as _dt
import typing


class ColumnType:
    __slots__ = ("name", "pg", "media")

    def __init__(self, name: str, pg: str, media: bool = False):
        self.name, self.pg, self.media = name, pg, media

    def __repr__(self) -> str:
        return f"pxt.{self.name.capitalize()}" if self.name in _BY_NAME else f"pxt.Type({self.pg!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ColumnType) and other.pg == self.pg

    def __hash__(self) -> int:
        return hash(self.pg)

    @property
    def is_numeric(self) -> bool:
        return self in (Int, Float) or self.pg in _NUMERIC

    @property
    def is_vector(self) -> bool:
        return self.pg.startswith(("vector", "halfvec", "sparsevec"))


Image = ColumnType("image", "pxt.image", media=True)
Video = ColumnType("video", "pxt.video", media=True)
Audio = ColumnType("audio", "pxt.audio", media=True)
Document = ColumnType("document", "pxt.document", media=True)
String = ColumnType("string", "text")
Int = ColumnType("int", "bigint")
Float = ColumnType("float", "double precision")
Bool = ColumnType("bool", "boolean")
Json = ColumnType("json", "jsonb")
Timestamp = ColumnType("timestamp", "timestamp with time zone")
Date = ColumnType("date", "date")
Bytes = ColumnType("bytes", "bytea")

ALL = (Image, Video, Audio, Document, String, Int, Float, Bool, Json, Timestamp, Date, Bytes)
_BY_NAME = {t.name: t for t in ALL}
_BY_PG = {t.pg: t for t in ALL}
_PG_ALIASES = {"integer": Int, "smallint": Int, "real": Float, "numeric": Float, "json": Json,
               "timestamp without time zone": Timestamp, "character varying": String, "character": String,
               "name": String}
_NUMERIC = {"bigint", "integer", "smallint", "real", "double precision", "numeric"}


def Type(pg: str) -> ColumnType:
    """Any other PostgreSQL type by name, e.g. ``pxt.Type('vector(384)')``."""
    return from_pg(pg)


def from_pg(pg: str, media_type: str | None = None) -> ColumnType:
    """The type of a catalog column (``format_type`` text and pxt.columns' media_type)."""
    if media_type:
        return _BY_NAME[media_type]
    if pg in _BY_PG:
        return _BY_PG[pg]
    base = pg.split("(")[0].strip()
    if base in _PG_ALIASES and not pg.endswith("[]"):
        return _PG_ALIASES[base]
    return ColumnType(pg, pg)


def from_python(t) -> ColumnType:
    """A type from an annotation: pxt types, Python builtins, PIL images, Optional[...]."""
    if isinstance(t, ColumnType):
        return t
    origin = typing.get_origin(t)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if len(args) == 1:
            return from_python(args[0])
    if origin in (dict, list):
        return Json
    simple = {str: String, int: Int, float: Float, bool: Bool, dict: Json, list: Json, bytes: Bytes,
              _dt.datetime: Timestamp, _dt.date: Date}
    if t in simple:
        return simple[t]
    if getattr(t, "__module__", "").startswith("PIL.") and getattr(t, "__name__", "") == "Image":
        return Image
    raise TypeError(f"no pixelgres column type for {t!r}; use pxt.String, pxt.Int, pxt.Float, pxt.Bool, "
                    "pxt.Json, pxt.Image, pxt.Timestamp, ... or a Python builtin")


def of_value(v) -> ColumnType | None:
    """The type a Python literal has in an expression (None for NULL)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return Bool
    if isinstance(v, int):
        return Int
    if isinstance(v, float):
        return Float
    if isinstance(v, str):
        return String
    if isinstance(v, (dict, list, tuple)):
        return Json
    if isinstance(v, _dt.datetime):
        return Timestamp
    if isinstance(v, _dt.date):
        return Date
    if isinstance(v, (bytes, bytearray, memoryview)):
        return Bytes
    raise TypeError(f"cannot use a {type(v).__name__} value in an expression")
