"""SQLAlchemy knows pixelgres's column types: ``import pixelgres.sqlalchemy``, or a
``postgresql+pixelgres://`` URL (the ``pixelgres`` dialect: psycopg 3 with this module loaded).

Without it, reflection (``inspect(engine).get_columns()``, ``Table(..., autoload_with=...)``,
pandas' ``read_sql_table``) sees a media column as an anonymous ``DOMAIN`` over text and a
pgvector column as a type it does not recognise, with a warning for each. With it, media
columns reflect as ``Image``, ``Video``, ``Audio`` and ``Document`` (text values: the media
reference) and vectors as pgvector's own ``VECTOR(n)`` / ``HALFVEC(n)``; both also work in
``Column(...)`` definitions and compile to ``pxt.image`` / ``vector(n)``.
"""
from __future__ import annotations

import pgvector.sqlalchemy  # noqa: F401  (registers vector, halfvec, sparsevec for reflection)
from pgvector.sqlalchemy import HALFVEC, SPARSEVEC, VECTOR
from sqlalchemy import types
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

__all__ = ["Image", "Video", "Audio", "Document", "VECTOR", "HALFVEC", "SPARSEVEC", "PixelgresDialect"]


class Media(types.UserDefinedType):
    """A media column: its value is the media reference (a path, URL or media:// name) as text."""
    cache_ok = True
    domain = ""

    def get_col_spec(self, **kw) -> str:
        return f"pxt.{self.domain}"

    @property
    def python_type(self):
        return str

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Image(Media):
    domain = "image"


class Video(Media):
    domain = "video"


class Audio(Media):
    domain = "audio"


class Document(Media):
    domain = "document"


for _t in (Image, Video, Audio, Document):
    # format_type() writes pxt.image, or image when pxt is on the search_path
    ischema_names[f"pxt.{_t.domain}"] = _t
    ischema_names.setdefault(_t.domain, _t)
for _name, _t in (("vector", VECTOR), ("halfvec", HALFVEC), ("sparsevec", SPARSEVEC)):
    # an extension in another schema than the search_path's is written schema-qualified
    ischema_names.setdefault(f"public.{_name}", _t)
    ischema_names.setdefault(f"extensions.{_name}", _t)


class PixelgresDialect(PGDialect_psycopg):
    """``postgresql+pixelgres://user:password@host:port/db``: psycopg 3 with the types above,
    for tools that take only a URL (Superset, Metabase's SQLAlchemy-based peers, pandas)."""
    name = "postgresql"
    driver = "pixelgres"
    supports_statement_cache = True
