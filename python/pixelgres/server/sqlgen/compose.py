"""SQL composition in the style of psycopg.sql, for a backend where psycopg is not installed.

    SQL("SELECT {} FROM {} WHERE id = {}").format(Identifier("name"), Identifier("pxt", "t"), Literal(5))

* ``SQL`` is a fragment of SQL text written in our source code: the constructor refuses any
  string that is not a literal of the calling code (tests/test_sql_lint.py checks the same
  statically), so text computed at run time — a user's name, a catalog value — can never
  become SQL. Everything else goes through ``Identifier``, ``Literal`` or ``TypeName``.
* ``SQL.format`` fills ``{}`` / ``{name}`` placeholders with Composable parts only: a plain
  ``str`` raises TypeError. That is the point: there is no way to paste text in.
* A Composable refuses to be formatted into an f-string (``f"{Identifier('x')}"`` raises), so
  mixing the two styles fails at once instead of producing half-quoted SQL.
* ``as_string()`` gives the text. No database is needed: quoting follows PostgreSQL's rules
  (``quote_ident`` always quoting, ``quote_literal``), with standard_conforming_strings on, as
  in every supported PostgreSQL; a string with a backslash is written ``E'...'`` so it reads
  the same whatever that setting says.
"""
from __future__ import annotations

import math
import re
import string
import sys
from collections.abc import Iterable

MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1


class Composable:
    """A piece of SQL: its text is ``as_string()``; ``a + b`` concatenates."""

    def as_string(self) -> str:
        raise NotImplementedError

    def __add__(self, other):
        if isinstance(other, Composable):
            return Composed([self, other])
        return NotImplemented

    def __eq__(self, other):
        return type(self) is type(other) and self.as_string() == other.as_string()

    def __hash__(self):
        return hash((type(self), self.as_string()))

    def __format__(self, spec):
        raise TypeError(f"{type(self).__name__} in an f-string or str.format: compose with SQL.format instead")

    def __repr__(self):
        return f"{type(self).__name__}({self.as_string()!r})"


class Composed(Composable):
    """A sequence of Composables, written one after the other."""

    def __init__(self, parts: Iterable[Composable]):
        self.parts = list(parts)
        for p in self.parts:
            if not isinstance(p, Composable):
                raise TypeError(f"Composed takes Composable parts, not {type(p).__name__}")

    def as_string(self) -> str:
        return "".join(p.as_string() for p in self.parts)

    def join(self, sep: SQL) -> Composed:
        """The parts, with ``sep`` between them."""
        return sep.join(self.parts)


class SQL(Composable):
    """SQL text written in our source code. Only a str literal of the calling code is
    accepted: ``SQL("DROP VIEW ")`` is fine, ``SQL(name)`` and ``SQL(f"...")`` raise."""

    def __init__(self, text: str):
        if type(text) is not str:
            raise TypeError(f"SQL takes a str literal, not {type(text).__name__}")
        if not _is_literal_of_caller(text):
            raise TypeError("SQL takes a str literal written in the source: compose values with "
                            "Identifier, Literal or TypeName and SQL.format")
        self._text = text

    @classmethod
    def _trusted(cls, text: str) -> SQL:
        """A piece of an already accepted SQL text (format splits its template)."""
        self = object.__new__(cls)
        self._text = text
        return self

    def as_string(self) -> str:
        return self._text

    def format(self, *args: Composable, **kwargs: Composable) -> Composed:
        """Fill ``{}``, ``{0}`` and ``{name}`` with Composables (``{{`` and ``}}`` are braces)."""
        out, auto = [], 0
        for text, field, spec, conversion in string.Formatter().parse(self._text):
            if text:
                out.append(SQL._trusted(text))
            if field is None:
                continue
            if spec or conversion:
                raise ValueError(f"SQL.format placeholders take no format spec or conversion: {{{field}...}}")
            if field == "":
                part, auto = args[auto], auto + 1
            elif field.isdigit():
                part = args[int(field)]
            else:
                part = kwargs[field]
            if not isinstance(part, Composable):
                raise TypeError(f"SQL.format takes Composable parts (SQL, Identifier, Literal, ...), not "
                                f"{type(part).__name__}: {part!r}")
            out.append(part)
        return Composed(out)

    def join(self, parts: Iterable[Composable]) -> Composed:
        """``parts`` with this text between them."""
        out = []
        for i, p in enumerate(parts):
            if i:
                out.append(self)
            out.append(p)
        return Composed(out)


def _is_literal_of_caller(text: str) -> bool:
    """Is ``text`` a constant of the code calling SQL()? (adjacent literals and "a" + "b" are
    folded by the compiler into one constant, so they count as one literal)."""
    frame = sys._getframe(2)  # 0: here, 1: SQL.__init__, 2: its caller
    return any(type(c) is str and c == text for c in frame.f_code.co_consts)


class Identifier(Composable):
    """A name, or a qualified name from its parts: always double-quoted, ``"`` doubled.
    Refused: no part, an empty part, a NUL, or a part longer than PostgreSQL keeps (63 bytes,
    counted in UTF-8; see ``clip`` for PostgreSQL's own truncation)."""

    def __init__(self, *parts: str):
        if not parts:
            raise ValueError("Identifier needs at least one part")
        for p in parts:
            if type(p) is not str:
                raise TypeError(f"Identifier parts are str, not {type(p).__name__}: {p!r}")
            if not p:
                raise ValueError("empty identifier")
            if "\0" in p:
                raise ValueError(f"identifier with a NUL character: {p!r}")
            if len(p.encode()) > MAX_IDENTIFIER_BYTES:
                raise ValueError(f"identifier longer than {MAX_IDENTIFIER_BYTES} bytes: {p!r}")
        self.parts = parts

    def as_string(self) -> str:
        return ".".join('"' + p.replace('"', '""') + '"' for p in self.parts)


def clip(name: str) -> str:
    """``name`` as PostgreSQL truncates an over-long identifier: its first 63 bytes, whole
    characters only (for callers that must keep accepting such names, as the SQL they replace did)."""
    return name.encode()[:MAX_IDENTIFIER_BYTES].decode(errors="ignore")


class Literal(Composable):
    """A constant value: None is NULL, bool true/false, int a number (negative ones in
    parentheses, so ``-`` can neither merge into ``--`` nor lose to ``::``'s precedence),
    float a float8 constant (NaN and the infinities included: ``'NaN'::float8``), str a quoted
    string as PostgreSQL's quote_literal writes it. A NUL character, which PostgreSQL text
    cannot hold, and any other type are refused."""

    def __init__(self, value):
        if value is not None and type(value) not in (bool, int, float, str):
            raise TypeError(f"Literal takes None, bool, int, float or str, not {type(value).__name__}")
        if type(value) is str and "\0" in value:
            raise ValueError("string literal with a NUL character")
        self.value = value

    def as_string(self) -> str:
        v = self.value
        if v is None:
            return "NULL"
        if type(v) is bool:
            return "true" if v else "false"
        if type(v) is int:
            return str(v) if v >= 0 else f"({v})"
        if type(v) is float:
            if math.isnan(v):
                text = "NaN"
            elif math.isinf(v):
                text = "Infinity" if v > 0 else "-Infinity"
            else:
                text = repr(v)  # shortest text that reads back as the same double
            return f"'{text}'::float8"
        return quote_literal(v)


def quote_literal(s: str) -> str:
    """PostgreSQL's quote_literal: ``'`` doubled; with a backslash, ``E'...'`` and ``\\`` doubled."""
    body = s.replace("'", "''")
    if "\\" in s:
        return "E'" + body.replace("\\", "\\\\") + "'"
    return "'" + body + "'"


class TypeName(Composable):
    """A type as PostgreSQL's format_type() writes it, kept as it is: a (qualified, possibly
    quoted) name, type modifiers and the words format_type spells types with, then ``[]``:
    ``integer``, ``character varying(20)[]``, ``numeric(3,-2)``, ``timestamp(3) with time
    zone``, ``interval day to second(3)``, ``pxt.image``, ``"My Type"``, ``geometry(Point,4326)``.
    Anything else — a quote outside a quoted name, a semicolon, a comment, another word, an
    expression in the parentheses — is refused, so the text cannot be anything but a type name."""

    def __init__(self, text: str):
        if type(text) is not str or not _TYPE_NAME.fullmatch(text):
            raise ValueError(f"not a type name as format_type() writes one: {text!r}")
        self.text = text

    def as_string(self) -> str:
        return self.text


_WORD = r"[A-Za-z_][A-Za-z0-9_$]*"
_NAME = rf'(?:"(?:[^"\0]|"")+"|{_WORD})'
_MODIFIERS = rf"\((?:-?[0-9]+|{_WORD})(?:, ?(?:-?[0-9]+|{_WORD}))*\)"
_TYPE_WORDS = "precision|varying|with|without|time|zone|to|year|month|day|hour|minute|second"
_TYPE_NAME = re.compile(rf"{_NAME}(?:\.{_NAME})*(?:{_MODIFIERS})?(?: (?:{_TYPE_WORDS})(?:{_MODIFIERS})?)*(?:\[\])*")


# --- names PostgreSQL wrote, expressions PostgreSQL parses, SQL kept in .sql files --------------
# (appended for sqlgen/iterators.py and sqlgen/embeddings.py)
_WRITTEN_PART = re.compile(r'"((?:[^"\0]|"")+)"|([a-z_][a-z0-9_]*)')


def written_name(text: str) -> Identifier:
    """The Identifier of a name as PostgreSQL writes one — ``quote_ident``,
    ``format('%I.%I', ...)``, ``regclass::text``, core.spi's ``qualified``: one part, or two
    separated by ``.``, each bare (lower-case ASCII letters, digits, ``_``: what quote_ident
    leaves unquoted) or double-quoted with ``""`` for a quote. Anything else raises ValueError: this reads back
    PostgreSQL's own quoting, never a user's spelling of a name (PostgreSQL parses that first,
    with parse_ident). The name is the same; only its quoting may change (always quoted)."""
    if type(text) is not str:
        raise TypeError(f"written_name takes a str, not {type(text).__name__}")
    parts, i = [], 0
    while True:
        m = _WRITTEN_PART.match(text, i)
        if not m:
            raise ValueError(f"not a name as PostgreSQL writes one: {text!r}")
        parts.append(m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2))
        i = m.end()
        if i == len(text):
            return Identifier(*parts)
        if text[i] != "." or len(parts) == 2:
            raise ValueError(f"not a name as PostgreSQL writes one: {text!r}")
        i += 1


class TrustedExpression(Composable):
    """Trusted text, kept as it is: an expression PostgreSQL itself wrote or parses. The one way
    here for text that is neither in our source nor a name, a value or a type to become SQL, so
    each use says where its text comes from (``source``, for the reader: it is not checked).
    Three kinds of text only:

    * PostgreSQL's own output: a deparse (pg_get_expr, pg_get_viewdef);
    * an expression a user wrote that passed ``ddl.exprs.scan`` (no ``;``, comments, dollar or
      E'' quoting, subqueries or statements; balanced parentheses) and that PostgreSQL parses
      where only an expression fits: an iterator view's call (in ``CROSS JOIN LATERAL``), an
      embedding call or the function name and argument list ``parse_call`` split it into, a
      search filter (inside parentheses, after ``AND``);
    * the query of ``pxt.export_parquet``, run with its caller's rights as COPY (query) TO
      would: one statement (PostgreSQL refused to open it as a cursor otherwise), used only
      as the body of a temporary view, where PostgreSQL accepts nothing but a query.

    Not for a name, a value or a type standing alone (``Identifier``/``written_name``,
    ``Literal``, ``TypeName``). Empty text and a NUL character are refused."""

    def __init__(self, text: str, source: str):
        if type(text) is not str:
            raise TypeError(f"TrustedExpression takes a str, not {type(text).__name__}")
        if not text.strip():
            raise ValueError("empty expression")
        if "\0" in text:
            raise ValueError("expression with a NUL character")
        if type(source) is not str or not source:
            raise TypeError("TrustedExpression needs its source: where the text comes from, and what checked it")
        self.text, self.source = text, source

    def as_string(self) -> str:
        return self.text


TEMPLATE_SECTION = re.compile(r"^-- pxt-template: ([a-z_]+)[ \t]*$", re.M)
_TEMPLATES: dict = {}


def template(name: str) -> dict[str, SQL]:
    """The sections of ``templates/<name>.sql`` (in this package, next to this file) as SQL.

    Such a file is SQL written in our source tree, as a string literal is; it is shipped
    with the package (the server reads only its installed package directory). A section
    starts at a line ``-- pxt-template: <section>`` and ends at the next one; what precedes
    the first is the file's own commentary. A section's text, less the blank lines around
    it, is SQL whose ``{name}`` placeholders ``SQL.format`` fills (with Composables only).
    Read once per backend."""
    if type(name) is not str or not re.fullmatch(r"[a-z_]+", name):
        raise ValueError(f"not a template name: {name!r}")
    if name not in _TEMPLATES:
        import os

        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates", name + ".sql"),
                  encoding="utf-8") as f:
            parts = TEMPLATE_SECTION.split(f.read())
        sections: dict[str, SQL] = {}
        for section, text in zip(parts[1::2], parts[2::2]):
            if section in sections:
                raise ValueError(f"template {name}: section {section!r} twice")
            sections[section] = SQL._trusted(text.strip("\n").rstrip())
        _TEMPLATES[name] = sections
    return dict(_TEMPLATES[name])
