"""``pixelgres allow-host HOST``: let one role's sessions reach a private or loopback host.

Media URLs and AI endpoints may not reach non-public addresses (cloud metadata, the database
host's own services) unless ``pixelgres.allowed_url_hosts`` lists them. A local
OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio) listens on loopback, so its
owner needs an allowance -- and only its owner: the setting is superuser-only, and it is set
for one role (``ALTER ROLE ... SET``), so other roles' sessions keep the protection.
"""
from __future__ import annotations

import contextlib
import ipaddress
import re

from psycopg import sql

_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _checked(host: str) -> str:
    host = host.strip().strip("[]")
    with contextlib.suppress(ValueError):  # an address or a network, written canonically
        return str(ipaddress.ip_network(host, strict=False)) if "/" in host else str(ipaddress.ip_address(host))
    if not _HOST.fullmatch(host):
        raise SystemExit(f"not a host name, address or CIDR: {host!r}")
    return host.lower()


def allow_host(conn, host: str, role: str | None = None) -> tuple[str, str]:
    """Add ``host`` to ``role``'s pixelgres.allowed_url_hosts (default: the connecting role);
    returns (role, the new list). Needs a superuser connection (the setting is superuser-only)."""
    host = _checked(host)
    role = role or conn.execute("SELECT current_user").fetchone()[0]
    row = conn.execute("""
        SELECT (SELECT substr(s, length('pixelgres.allowed_url_hosts=') + 1) FROM unnest(setconfig) s
                 WHERE s LIKE 'pixelgres.allowed_url_hosts=%%')
        FROM pg_db_role_setting WHERE setdatabase = 0 AND setrole = (SELECT oid FROM pg_roles WHERE rolname = %s)""",
                       (role,)).fetchone()
    have = [h.strip() for h in (row[0] if row and row[0] else "").split(",") if h.strip()]
    if host not in have:
        have.append(host)
    hosts = ",".join(have)
    conn.execute(sql.SQL("ALTER ROLE {} SET pixelgres.allowed_url_hosts = {}").format(
        sql.Identifier(role), sql.Literal(hosts)))
    return role, hosts
