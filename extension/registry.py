"""SQL functions declared once: ``sql/functions/NN_area.toml`` → the wrappers of ``NN_area.sql``.

Each TOML table declares one function: its SQL signature, volatility and strictness, and the
Python callable that implements it. build_sql.py replaces the line ``-- @registry`` of the SQL
file with the generated ``CREATE OR REPLACE FUNCTION`` statements (plpython3u bodies that
start with ``#@pxt``, the boot preamble), their comments, and the ``pxt.batched_functions``
rows of batched functions. Output depends only on the TOML text, so a rebuild is byte-identical.

Keys of an entry ``[name]`` (the function is ``pxt.<name>``):

``args``        SQL arguments, e.g. ``"img pxt.image, width integer, height integer DEFAULT 0"``
``returns``     SQL result type, e.g. ``"pxt.image"``, ``"jsonb"``, ``"TABLE (pos integer, text text)"``
``python``      ``"pixelgres.server.media.image:resize"``: called with the arguments in order;
                for a batched function, the module that registers the batch implementation
``batched``     the batch implementation's name (pixelgres.server.core.batch.batched)
``volatility``  ``"immutable"``, ``"stable"`` or ``"volatile"`` (default)
``strict``      true: NULL in, NULL out without calling Python (default false)
``null_if``     arguments whose NULL gives NULL (or no rows) without calling Python
``rows``        true: set-returning; the callable yields rows (collected, see core.errors.rows)
``json``        true: the Python result is serialised to JSON (jsonb results)
``comment``     COMMENT ON FUNCTION text
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

KEYS = {"args", "returns", "python", "batched", "volatility", "strict", "null_if", "rows", "json", "comment"}
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_ARG = re.compile(r'^\s*("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_]*)\s+(.+?)(?:\s+DEFAULT\s+.+)?\s*$', re.I | re.S)
_TARGET = re.compile(r"^[a-z_][a-z0-9_.]*(:[a-z_][a-z0-9_]*)?$")


class RegistryError(ValueError):
    pass


def _split_args(args: str) -> list[str]:
    """Top-level commas only: numeric(10, 2) and DEFAULT '{a,b}' stay whole."""
    out, depth, quote, cur = [], 0, None, ""
    for ch in args:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    if cur.strip():
        out.append(cur)
    return [a.strip() for a in out]


def _parse_args(fn: str, args: str) -> list[tuple[str, str]]:
    """(python name, SQL type) per argument."""
    parsed = []
    for a in _split_args(args):
        m = _ARG.match(a)
        if not m:
            raise RegistryError(f"pxt.{fn}: cannot read argument {a!r}")
        name = m.group(1).strip('"').replace('""', '"')
        if not _IDENT.match(name):
            raise RegistryError(f"pxt.{fn}: argument name {name!r} must be a lowercase Python identifier")
        parsed.append((name, " ".join(m.group(2).split())))
    return parsed


def _py_literal(s: str) -> str:
    if not re.match(r"^[A-Za-z0-9_]+$", s):
        raise RegistryError(f"{s!r} must be letters, digits and underscores")
    return f'"{s}"'


def _sql_literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def generate(fn: str, spec: dict) -> str:
    unknown = set(spec) - KEYS
    if unknown:
        raise RegistryError(f"pxt.{fn}: unknown keys {sorted(unknown)} (known: {sorted(KEYS)})")
    if not _IDENT.match(fn):
        raise RegistryError(f"function name {fn!r} must be a lowercase identifier")
    for k in ("args", "returns", "python"):
        if k not in spec:
            raise RegistryError(f"pxt.{fn}: {k} is required")
    for k in ("args", "returns"):
        if re.search(r"[;$]|--|/\*", spec[k]):
            raise RegistryError(f"pxt.{fn}: {k} must be plain SQL types and defaults (no ; $ -- /*)")
    args = _parse_args(fn, spec["args"])
    names = [n for n, _ in args]
    signature = f"pxt.{fn}({', '.join(t for _, t in args)})"
    target = spec["python"]
    if not _TARGET.match(target) or not target.startswith("pixelgres.server."):
        raise RegistryError(f"pxt.{fn}: python must be pixelgres.server.<module>[:<function>], not {target!r}")
    module, _, func = target.partition(":")
    volatility = spec.get("volatility", "volatile").upper()
    if volatility not in ("IMMUTABLE", "STABLE", "VOLATILE"):
        raise RegistryError(f"pxt.{fn}: volatility must be immutable, stable or volatile")
    null_if = spec.get("null_if", [])
    if not set(null_if) <= set(names):
        raise RegistryError(f"pxt.{fn}: null_if names unknown arguments {sorted(set(null_if) - set(names))}")
    rows = spec.get("rows", False)

    body = ["#@pxt"]
    call_args = ", ".join(names)
    if spec.get("batched"):
        if func or rows:
            raise RegistryError(f"pxt.{fn}: a batched function names the module registering it, and returns one value")
        pkg, _, mod = module.rpartition(".")
        body.append(f"from {pkg} import {mod} as _impl  # noqa: F401 - registers the batch implementation")
        tuple_args = call_args + ("," if len(names) == 1 else "")
        call = f"srv.batch.call({_py_literal(spec['batched'])}, ({tuple_args}))"
    else:
        if not func:
            raise RegistryError(f"pxt.{fn}: python must name a function (<module>:<function>)")
        helper = "rows" if rows else "guard"
        body.append(f"from pixelgres.server.core.errors import {helper} as _{helper}")
        body.append(f"from {module} import {func} as _fn")
        call = f"_{helper}(_fn{', ' + call_args if call_args else ''})"
    if spec.get("json"):
        body.insert(1, "import json as _json")
        call = f"_json.dumps({call})"
    if null_if:
        body.append(f"if {' or '.join(f'{n} is None' for n in null_if)}:")
        body.append("    return []" if rows else "    return None")
    body.append(f"return {call}")

    opts = ["LANGUAGE plpython3u"]
    if volatility != "VOLATILE":
        opts.append(volatility)
    if spec.get("strict"):
        opts.append("STRICT")
    out = [f"CREATE OR REPLACE FUNCTION pxt.{fn}({spec['args'].strip()})\n"
           f"RETURNS {spec['returns'].strip()} {' '.join(opts)} AS $py$\n" + "\n".join(body) + "\n$py$;\n"]
    if spec.get("comment"):
        out.append(f"COMMENT ON FUNCTION {signature} IS\n  {_sql_literal(spec['comment'].strip())};\n")
    if spec.get("batched"):
        out.append(f"INSERT INTO pxt.batched_functions (func) VALUES ({_sql_literal(signature)}) ON CONFLICT DO NOTHING;\n")
    return "".join(out)


def render(toml_path: Path) -> str:
    """The generated SQL for one registry file, in declaration order."""
    with open(toml_path, "rb") as f:
        entries = tomllib.load(f)
    return "\n".join(generate(fn, spec) for fn, spec in entries.items())


def expand(sql_path: Path, text: str) -> str:
    """Replace the ``-- @registry`` line of a function file with its registry's functions."""
    toml_path = sql_path.with_suffix(".toml")
    marker = re.compile(r"^-- @registry$", re.M)
    found = len(marker.findall(text))
    if not toml_path.exists():
        if found:
            raise RegistryError(f"{sql_path.name} has a -- @registry line but no {toml_path.name}")
        return text
    if found != 1:
        raise RegistryError(f"{sql_path.name} must have exactly one -- @registry line for {toml_path.name}")
    generated = f"-- generated from {toml_path.name} (extension/registry.py)\n" + render(toml_path)
    return marker.sub(lambda _: generated.rstrip("\n"), text)
