"""``pixelgres role add | list | drop``: login roles for BI tools and other SQL clients.

A new role gets a generated password (printed once: the server keeps only its SCRAM
verifier), membership in pxt_reader, pxt_user or pxt_admin, and ready-to-paste connection
strings for libpq, JDBC and SQLAlchemy.
"""
from __future__ import annotations

import re
import secrets
import urllib.parse

from psycopg import sql

LEVELS = {"reader": "pxt_reader", "user": "pxt_user", "admin": "pxt_admin"}
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_name(name: str) -> str:
    if not _NAME.match(name) or name.startswith("pg_") or name.startswith("pxt_"):
        raise ValueError(f"role name {name!r}: use lowercase letters, digits and _ (not pg_* or pxt_*)")
    return name


def connection_strings(name: str, password: str, host: str, port: int, dbname: str) -> dict:
    u, p, d = (urllib.parse.quote(x, safe="") for x in (name, password, dbname))
    h = f"[{host}]" if ":" in host else host
    return {
        "libpq": f"postgresql://{u}:{p}@{h}:{port}/{d}",
        "JDBC": f"jdbc:postgresql://{h}:{port}/{d}?user={u}&password={p}",
        "SQLAlchemy": f"postgresql+psycopg://{u}:{p}@{h}:{port}/{d}",
    }


def add(conn, name: str, level: str) -> str:
    """Create login role ``name`` in ``level``'s pxt role; returns its generated password."""
    check_name(name)
    password = secrets.token_urlsafe(24)
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
        raise ValueError(f"role {name!r} exists; 'pixelgres role drop {name}' first")
    with conn.transaction():
        conn.execute("SET LOCAL password_encryption = 'scram-sha-256'")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(LEVELS[level]), sql.Identifier(name)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(conn.info.dbname), sql.Identifier(name)))
    return password


def listing(conn) -> list[tuple]:
    return conn.execute("""
        SELECT r.rolname, string_agg(g.rolname, ',' ORDER BY g.rolname), r.rolpassword IS NOT NULL
        FROM pg_authid r JOIN pg_auth_members m ON m.member = r.oid JOIN pg_roles g ON g.oid = m.roleid
        WHERE g.rolname IN ('pxt_reader', 'pxt_user', 'pxt_admin') AND r.rolcanlogin
        GROUP BY r.rolname, r.rolpassword ORDER BY 1""").fetchall()


def drop(conn, name: str) -> None:
    check_name(name)
    if not any(r[0] == name for r in listing(conn)):
        raise ValueError(f"{name!r} is not a login role made by 'pixelgres role add'")
    with conn.transaction():  # what add granted goes; a role that owns tables is refused (REASSIGN OWNED first)
        conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(
            sql.Identifier(conn.info.dbname), sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
