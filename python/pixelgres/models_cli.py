"""``pixelgres models add NAME PATH | list``: install local model weights where the server
reads them (``pixelgres.model_dir``), on the server's machine.

``add`` copies a model directory (what ``save_pretrained`` writes: config.json, weights,
tokenizer and processor files) to ``<model_dir>/NAME``, complete or not at all (a temporary
copy renamed into place), readable by the server's OS user. Without a model_dir, the embedded
cluster gets ``$PIXELGRES_HOME/models`` (set with ALTER SYSTEM, as its superuser).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

from psycopg import sql

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _model_dir(conn, embedded_home: Path | None) -> Path:
    d = conn.execute("SELECT current_setting('pixelgres.model_dir')").fetchone()[0]
    if d:
        return Path(d)
    if embedded_home is None:
        raise SystemExit("pixelgres.model_dir is not set on this server: a superuser sets it "
                         "(ALTER SYSTEM SET pixelgres.model_dir = '/path'; SELECT pg_reload_conf())")
    d = embedded_home / "models"
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o755)
    conn.execute(sql.SQL("ALTER SYSTEM SET pixelgres.model_dir = {}").format(sql.Literal(str(d))))
    conn.execute("SELECT pg_reload_conf()")
    return d


def add(conn, name: str, source: Path, embedded_home: Path | None, replace: bool = False) -> Path:
    if not _NAME.fullmatch(name) or ".." in name:
        raise SystemExit(f"invalid model name {name!r}: letters, digits, '.', '_', '-'")
    source = Path(source)
    if not (source / "config.json").is_file():
        raise SystemExit(f"{source} is not a model directory (no config.json)")
    root = _model_dir(conn, embedded_home)
    final = root / name
    if final.exists() and not replace:
        raise SystemExit(f"{final} exists (--replace to overwrite)")
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(source, tmp, symlinks=False)
        for p in [tmp, *tmp.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def listing(conn) -> list[tuple[str, str]]:
    d = conn.execute("SELECT current_setting('pixelgres.model_dir')").fetchone()[0]
    if not d or not os.path.isdir(d):
        return []
    out = []
    for p in sorted(Path(d).iterdir()):
        cfg = p / "config.json"
        if cfg.is_file():
            try:
                kind = json.loads(cfg.read_text()).get("model_type", "?")
            except ValueError:
                kind = "unreadable config.json"
            out.append((p.name, kind))
    return out


def main(args, connect) -> int:
    """args: the parsed ``models`` subcommand; connect(): (connection, embedded home or None)."""
    conn, home = connect()
    with conn:
        if args.action == "add":
            print(add(conn, args.name, Path(args.path), home, args.replace))
        else:
            for name, kind in listing(conn):
                print(f"{name}\t{kind}")
    return 0


if __name__ == "__main__":
    sys.exit("use: pixelgres models add NAME PATH | list")
