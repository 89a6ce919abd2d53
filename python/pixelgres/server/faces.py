"""A managed table's face: the view with the table's name that shows only the user's columns.

The rows live in the table's storage, ``pxt_data."<schema>.<table>"`` (named for the table when it
was made; its vkey when that name is taken or too long): the user's columns, then
``_pxt_rowid``, ``_pxt_errors``, ``_pxt_v`` and soft-dropped columns. The face selects the
user's columns from it in their order, so ``SELECT *`` and BI tools see what the user defined;
PostgreSQL passes INSERT, UPDATE and DELETE on the face through to the storage, whose triggers
compute, version and check as before. Everything inside pixelgres works on the storage (its
OID is ``pxt.tables.relid``); users and messages use the face's name. ``extension/faces.c``
points TRUNCATE, COPY, ALTER TABLE, CREATE INDEX... on the face at the storage, and ``sync``
follows every change of the storage's columns (it runs from ``tables._sync``).
"""
from __future__ import annotations

import plpy

from .core.errors import fail
from .core.spi import one, qualified, vkey
from .sqlgen import ddl as gen
from .sqlgen.compose import SQL, Identifier, Literal, written_name

STORAGE_SCHEMA = "pxt_data"
_REBUILDING = "pxt_face.rebuilding"  # set while sync drops and recreates a face: not a table drop


def face_of(oid: int) -> int | None:
    """OID of a storage's face, if it has one."""
    r = one("SELECT t.face::oid::int AS f FROM pxt.tables t JOIN pg_class c ON c.oid = t.face "
            "WHERE t.relid = $1", oid, types=["oid"])
    return r["f"] if r else None


def _name(oid: int) -> tuple[str, str]:
    r = one("SELECT n.nspname AS s, c.relname AS r FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = $1", oid, types=["oid"])
    return r["s"], r["r"]


def _user_columns(oid: int) -> list[tuple[int, str]]:
    """(attnum, name) of the storage's user columns, in order."""
    return [(r["attnum"], r["attname"]) for r in plpy.execute(plpy.prepare(
        "SELECT attnum, attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped "
        "AND attname NOT LIKE '\\_pxt\\_%' ORDER BY attnum", ["oid"]), [oid])]


def _select(storage: Identifier, cols: list[tuple[int, str]]) -> SQL:
    return SQL("SELECT {} FROM ONLY {}").format(SQL(", ").join(Identifier(n) for _, n in cols), storage)


def _define(face: Identifier, storage: Identifier, cols: list[tuple[int, str]], replace: bool = False) -> str:
    """CREATE [OR REPLACE] VIEW of the face. security_invoker (given again on each replace,
    which resets a view's options): the storage's row-level security and privileges apply to
    whoever reads the face, as they did to the table; an owner's view would bypass them."""
    verb = SQL("CREATE OR REPLACE VIEW") if replace else SQL("CREATE VIEW")
    return SQL("{} {} WITH (security_invoker = true) AS {}").format(verb, face, _select(storage, cols)).as_string()


def _storage_name(oid: int, schema: str, table: str) -> str:
    """``schema.table`` (legible in psql: ``SELECT _pxt_errors FROM pxt_data."ml.images"``), or
    the table's vkey when that is taken or longer than a name may be."""
    want = f"{schema}.{table}"
    if len(want.encode()) <= 63 and one("SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NULL AS free",
                                        STORAGE_SCHEMA, want)["free"]:
        return want
    return vkey(oid)


def adopt(oid: int, schema: str, table: str) -> None:
    """Move a newly managed table to its storage and put its face where it was."""
    key = vkey(oid)  # a name nothing else has, in the table's schema, on the way
    plpy.execute(SQL("ALTER TABLE {} RENAME TO {}").format(Identifier(schema, table), Identifier(key)).as_string())
    plpy.execute(SQL("ALTER TABLE {} SET SCHEMA {}").format(Identifier(schema, key),
                                                           Identifier(STORAGE_SCHEMA)).as_string())
    name = _storage_name(oid, schema, table)
    if name != key:
        plpy.execute(SQL("ALTER TABLE {} RENAME TO {}").format(Identifier(STORAGE_SCHEMA, key),
                                                               Identifier(name)).as_string())
    face = Identifier(schema, table)
    _create(oid, face)
    _grant_like_storage(oid, face)


def _create(oid: int, face: Identifier) -> None:
    storage = written_name(qualified(oid))
    plpy.execute(_define(face, storage, _user_columns(oid)))
    f = one("SELECT $1::regclass::oid::int AS o", face.as_string(), types=["text"])["o"]
    plpy.execute(plpy.prepare("UPDATE pxt.tables SET face = $2 WHERE relid = $1", ["oid", "oid"]), [oid, f])
    plpy.execute(SQL("COMMENT ON VIEW {} IS {}").format(face, Literal(
        f"pixelgres table; its rows, with the bookkeeping columns, are in {qualified(oid)}")).as_string())


_PRIVILEGES = {"SELECT": SQL("SELECT"), "INSERT": SQL("INSERT"), "UPDATE": SQL("UPDATE"), "DELETE": SQL("DELETE"),
               "REFERENCES": SQL("REFERENCES"), "TRIGGER": SQL("TRIGGER")}  # a view's privileges


def _grants(rel: int) -> list[tuple[str | None, str]]:
    """(grantee, privilege) of a relation's ACL but its owner's; grantee None is PUBLIC."""
    return [(r["g"], r["p"]) for r in plpy.execute(plpy.prepare(
        "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS g, a.privilege_type AS p "
        "FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1 AND a.grantee <> c.relowner", ["oid"]), [rel])]


def _grant(face: Identifier, grants: list[tuple[str | None, str]]) -> None:
    for grantee, priv in grants:
        if priv in _PRIVILEGES:
            plpy.execute(SQL("GRANT {} ON {} TO {}").format(
                _PRIVILEGES[priv], face, SQL("PUBLIC") if grantee is None else Identifier(grantee)).as_string())


def _grant_like_storage(oid: int, face: Identifier) -> None:
    """The face gets the privileges its table had (pxt_reader's SELECT, the user's own grants)."""
    _grant(face, _grants(oid))


def sync(oid: int) -> None:
    """Make the face show the storage's user columns: renamed columns are renamed, new ones
    appended (CREATE OR REPLACE VIEW); a dropped column means a new face, which PostgreSQL
    refuses while other views read the face."""
    f = face_of(oid)
    if f is None:
        return
    want = _user_columns(oid)
    have = [r["attname"] for r in plpy.execute(plpy.prepare(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        ["oid"]), [f])]
    # the face lists storage columns in attnum order, so its i-th column reads the i-th attnum it depends on
    reads = [r["a"] for r in plpy.execute(plpy.prepare(
        "SELECT DISTINCT d.refobjsubid AS a FROM pg_rewrite w JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass "
        "AND d.objid = w.oid WHERE w.ev_class = $1 AND d.refobjid = $2 AND d.refobjsubid > 0 ORDER BY 1",
        ["oid", "oid"]), [f, oid])]
    if [n for _, n in want] == have:
        return
    schema, table = _name(f)
    face = Identifier(schema, table)
    storage = written_name(qualified(oid))
    if len(reads) == len(have) and reads == [a for a, _ in want[:len(have)]]:
        renames = [(old, new) for old, (_, new) in zip(have, want) if old != new]
        for i, (old, _) in enumerate(renames):  # through temporary names: a and b may swap
            plpy.execute(SQL("ALTER VIEW {} RENAME COLUMN {} TO {}").format(
                face, Identifier(old), Identifier(f"_pxt_renaming_{i}")).as_string())
        for i, (_, new) in enumerate(renames):
            plpy.execute(SQL("ALTER VIEW {} RENAME COLUMN {} TO {}").format(
                face, Identifier(f"_pxt_renaming_{i}"), Identifier(new)).as_string())
        if len(want) > len(have):
            plpy.execute(_define(face, storage, want, replace=True))
        return
    acl = _grants(f)
    _set_rebuilding("on")
    try:
        plpy.execute(gen.drop_view(face).as_string())
    except plpy.SPIError as e:
        fail(f"cannot change the columns of {schema}.{table}: other objects read it "
             f"({e.args[0] if e.args else e})", hint="drop the views that read it first, then recreate them",
             sqlstate="2BP01")
    finally:
        _set_rebuilding("off")
    _create(oid, face)
    _grant(face, acl)


def _set_rebuilding(value: str) -> None:
    plpy.execute(plpy.prepare("SELECT set_config($1, $2, true)", ["text", "text"]), [_REBUILDING, value])


def drop(oid: int) -> bool:
    """pxt.drop_table: drop the face (and, through ``dropped``, the storage); False without one."""
    f = face_of(oid)
    if f is None:
        return False
    schema, table = _name(f)
    plpy.execute(SQL("DROP VIEW {} CASCADE").format(Identifier(schema, table)).as_string())
    return True


def dropped(faces: dict[int, str], column_of: set[int]) -> None:
    """sql_drop: a face dropped by DROP VIEW, DROP TABLE (extension/faces.c) or DROP SCHEMA
    takes its storage along. One that a dropped storage column took with it (revert of an
    added column, DROP COLUMN ... CASCADE) is made again; one ``sync`` rebuilds is left to it."""
    if one("SELECT current_setting($1, true) = 'on' AS x", _REBUILDING)["x"]:
        return
    for r in plpy.execute(plpy.prepare(
            "SELECT relid::oid::int AS s, face::oid::int AS f FROM pxt.tables WHERE face::oid = ANY($1)",
            ["oid[]"]), [list(faces)]):
        plpy.execute(plpy.prepare("UPDATE pxt.tables SET face = NULL WHERE relid = $1", ["oid"]), [r["s"]])
        if not one("SELECT 1 AS x FROM pg_class WHERE oid = $1", r["s"], types=["oid"]):
            continue
        if r["s"] in column_of:
            face = written_name(faces[r["f"]])
            _create(r["s"], face)
            _grant_like_storage(r["s"], face)
        else:
            plpy.execute(SQL("DROP TABLE {} CASCADE").format(written_name(qualified(r["s"]))).as_string())
