"""The package's structure, checked without a database: layers that import only downward.

Every import of a pixelgres module counts, at module level or inside a function (a lazy
import kept for a heavy dependency must point downward too), and importing ``a.b.c`` also
imports the packages ``a`` and ``a.b``. docs/architecture.md explains the layers.
"""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "python" / "pixelgres"

# The server's layers, bottom first. A module may import from its own layer's lower entries
# and from any layer below; never upward. Recording versions (history) sits below DDL, because
# every DDL statement writes a version; undoing one (revert) replays DDL, so it sits above.
# Subpackages only group modules (their __init__ imports nothing), so only modules are placed.
SERVER_LAYERS = [
    ["core.clock", "core.outside", "core.errors", "core.deps", "core.spi", "core.batch", "core.threads"],
    ["sqlgen.compose", "sqlgen.versioning", "sqlgen.ddl", "sqlgen.iterators", "sqlgen.embeddings", "sqlgen.work"],  # pure SQL generation: no plpy, no database
    ["catalog", "faces"],
    ["tabular", "media.encode", "media.objects", "media.cache", "media.links",  # Parquet/CSV rows, object stores, their local cache: no plpy
     "media.gucs", "media.uploads", "media.buckets", "media.store", "media.urls", "media.video", "media.resolve", "media.image", "media.audio", "media.documents", "media.probe", "media.validate"],
    ["model_store", "versioning.history", "versioning.vacuum"],
    ["ddl.exprs", "ddl.triggers", "ddl.tables", "ddl.work"],
    ["iterators.views", "versioning.revert", "exports"],
    ["ai.ratelimit", "ai.remote", "ai.messages", "ai.hf_tasks", "ai.inference", "ai.model_client", "ai.calls", "ai.openai_client",
     "ai.openai_fns", "ai.providers.anthropic", "ai.providers.gemini", "ai.providers.mistral", "ai.providers.ollama",
     "ai.providers.bedrock", "ai.model_server", "ai.embedding_models", "ai.local_models", "ai.clip", "ai.local_tasks", "ai.embedding_index"],
    [""],  # pixelgres.server itself: the entry point SQL bodies call
]


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """pixelgres modules ``name`` imports, anywhere in its body, with their parent packages."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for t in targets:
            if t in known:
                parts = t.split(".")
                found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    found &= known
    found.discard(name)
    # a module's own packages are imported before it: not an edge of its making
    return {f for f in found if not name.startswith(f + ".")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {n: _imports(n, p, set(mods)) for n, p in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles(graph):
    assert _cycles(graph) == []


def test_cycle_finder_finds_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_server_imports_only_downward(graph):
    rank = {}
    for level, names in enumerate(SERVER_LAYERS):
        for order, n in enumerate(names):
            rank["pixelgres.server" + ("." + n if n else "")] = (level, order)
    inert = {m for m in graph if (PKG.parent / m.replace(".", "/") / "__init__.py").exists() and not graph[m]
             and m != "pixelgres.server"}
    server = {m for m in graph if m == "pixelgres.server" or m.startswith("pixelgres.server.")} - inert
    unplaced = sorted(server - set(rank))
    assert not unplaced, f"place these modules in SERVER_LAYERS: {unplaced}"
    bad = []
    for m in sorted(server):
        for dep in sorted(graph[m]):
            if dep == "pixelgres._version" or dep in inert:
                continue
            if dep not in rank:
                bad.append(f"{m} imports {dep}, outside the server")
            elif rank[dep] >= rank[m] and not m.startswith(dep + "."):
                bad.append(f"{m} {rank[m]} imports {dep} {rank[dep]}, which is not below it")
    assert bad == []


def test_client_never_imports_the_server(graph):
    """The client runs where the server's dependencies are not installed, and the other way
    round; they meet only through SQL."""
    bad = [(m, d) for m, deps in graph.items() for d in deps
           if (m.startswith(("pixelgres.client", "pixelgres.functions")) and d.startswith("pixelgres.server"))
           or (m.startswith("pixelgres.server") and d.startswith(("pixelgres.client", "pixelgres.functions")))]
    assert bad == []
