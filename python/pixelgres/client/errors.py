"""``pxt.Error``: a database error as a Python exception that says where it happened.

The server's messages name the computed or media column, the table and the row
(``computed column y of public.t failed for row (_pxt_rowid=3, x='10'): ...``); this module
parses them into attributes, adds the input row of an insert when it can tell which one, and
keeps the SQL error's fields (sqlstate, hint, detail) and the psycopg error as ``__cause__``.
"""
from __future__ import annotations

import contextlib
import re

_COMPUTED = re.compile(r"computed column (?P<column>.+?) of (?P<table>\S+) failed for row \((?P<row>.*?)\): ")
_MEDIA = re.compile(r"invalid (?P<kind>image|video|audio|document) in column (?P<column>.+?) of (?P<table>\S+), "
                    r"row _pxt_rowid=(?P<rowid>\d+|)")
_WRITE = re.compile(r"cannot write computed column (?P<column>.+?) of (?P<table>\S+)")
_ROWID = re.compile(r"_pxt_rowid=(\d+)")
_COPY_LINE = re.compile(r"COPY [^,]+, line (\d+)")


class Error(Exception):
    """An error from pixelgres or the database.

    Attributes (None when unknown): ``message`` (the SQL error's message), ``sqlstate``,
    ``table``, ``column``, ``rowid`` (the row's ``_pxt_rowid``), ``row`` (the failing row's
    values as the server reported them, text), ``input_row`` (index into the rows given to
    ``insert``), ``hint``, ``detail``.
    """

    def __init__(self, message: str, *, sqlstate=None, table=None, column=None, rowid=None, row=None,
                 input_row=None, hint=None, detail=None):
        self.message, self.sqlstate, self.table, self.column = message, sqlstate, table, column
        self.rowid, self.row, self.input_row, self.hint, self.detail = rowid, row, input_row, hint, detail
        super().__init__(message)

    def __str__(self) -> str:
        parts = [self.message]
        if self.input_row is not None:
            parts.append(f"(input row {self.input_row})")
        if self.hint:
            parts.append(f"\nHINT: {self.hint}")
        return " ".join(parts[:2]) + "".join(parts[2:])


def from_db(e, row_index=None) -> Error:
    """Translate a psycopg error; ``row_index(rowid=None, copy_line=None)`` maps to an input row."""
    diag = getattr(e, "diag", None)
    msg = (diag.message_primary if diag and diag.message_primary else str(e)).strip()
    msg = re.sub(r"^plpy\.(Error|Fatal|SPIError): ", "", msg)
    info = dict(sqlstate=getattr(e, "sqlstate", None), hint=diag.message_hint if diag else None,
                detail=diag.message_detail if diag else None,
                table=(f"{diag.schema_name}.{diag.table_name}" if diag and diag.table_name else None),
                column=diag.column_name if diag else None)
    m = _COMPUTED.search(msg) or _MEDIA.search(msg) or _WRITE.search(msg)
    if m:
        info["column"], info["table"] = m.group("column"), m.group("table")
        if "row" in m.groupdict():
            info["row"] = m.group("row")
    rid = _ROWID.search(msg)
    if rid:
        info["rowid"] = int(rid.group(1))
    ctx = diag.context if diag else None
    line = _COPY_LINE.search(ctx or "")
    if row_index is not None:
        info["input_row"] = row_index(info.get("rowid"), int(line.group(1)) if line else None)
    return Error(msg, **info)


@contextlib.contextmanager
def translated(row_index=None):
    """Re-raise psycopg errors as pxt.Error (the psycopg error stays as __cause__)."""
    import psycopg

    try:
        yield
    except psycopg.Error as e:
        if isinstance(e, (psycopg.OperationalError, psycopg.InterfaceError)) and getattr(e, "sqlstate", None) is None:
            raise Error(f"connection to the pixelgres database failed: {e}") from e
        raise from_db(e, row_index) from e
