"""Embedding indexes on pgvector HNSW, and similarity search (docs/embeddings.md).

An embedding index is a computed vector column (``pxt.add_computed_column``: visible, named,
kept in step by the table's triggers, versioned like any column) plus an HNSW index on it,
recorded in ``pxt.embedding_indexes``. Queries embed the query text with the index's own
function call; ``search``/``hybrid_search`` order by the distance operator against that
constant so the planner can use the index.
"""
import collections
import re

import plpy

from ..catalog import display_name, managed
from ..core.errors import fail as _fail
from ..core.spi import check_column_name, one, qualified
from ..ddl import exprs, tables
from ..media.store import store_bytes
from ..sqlgen import embeddings as gen
from ..sqlgen.compose import Identifier, written_name

METRICS = gen.OPERATORS
DTYPES = {"fp32": "vector", "vector": "vector", "fp16": "halfvec", "halfvec": "halfvec"}
MAX_DIMS = {"vector": 2000, "halfvec": 4000}  # pgvector's HNSW limits
_VS: dict = {}


def _vs() -> Identifier:
    """pgvector's schema: generated SQL names its types, operators and operator classes in
    full, so it works whatever the caller's search_path."""
    if "s" not in _VS:
        row = one("SELECT quote_ident(n.nspname) AS s FROM pg_extension e JOIN pg_namespace n "
                  "ON n.oid = e.extnamespace WHERE e.extname = 'vector'")
        if row is None:
            _fail("the pgvector extension (vector) is not installed in this database")
        _VS["s"] = written_name(row["s"])
    return _VS["s"]


DEFAULT_TEXT_EMBEDDING = "pxt.e5_small()"
DEFAULT_IMAGE_EMBEDDING = "pxt.image_features()"
TEXT_TYPES = ("text", "character varying", "character", "name")
PROBE_TEXT = "pixelgres embedding probe"

_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_]*|"(?:[^"]|"")+")'
_CALL = re.compile(rf'^\s*({_IDENT}(?:\s*\.\s*{_IDENT})?)\s*\((.*)\)\s*$', re.S)


def parse_call(text: str, what: str = "embedding") -> tuple[str, str]:
    """'schema.func(arg, name => value)' -> ('schema.func', 'arg, name => value').

    Strict on purpose: a (possibly schema-qualified) function name and one parenthesised
    argument list, nothing after it; the arguments pass the computed-expression lexer
    (exprs.scan: no statements, subqueries, comments or exotic quoting). PostgreSQL then
    parses and types the call with the column inserted as its first argument."""
    hint = ("give a function call without its input, e.g. pxt.sentence_transformer(model => "
            "'all-MiniLM-L6-v2') or pxt.e5_small()")
    if not isinstance(text, str) or not text.strip():
        _fail(f"{what} must be a function call such as pxt.e5_small()", hint=hint)
    m = _CALL.match(text)
    if not m:
        _fail(f"malformed {what} {text!r}: expected a function name followed by a parenthesised "
                   "argument list", hint=hint)
    name, args = m.group(1), m.group(2)
    depth, i = 0, 0
    while i < len(args):  # the argument list must be one group: ')' never closes the call early
        c = args[i]
        if c in "'\"":
            j = args.find(c, i + 1)
            while j >= 0 and args[j + 1:j + 2] == c:
                j = args.find(c, j + 2)
            if j < 0:
                _fail(f"malformed {what} {text!r}: unterminated quote", hint=hint)
            i = j + 1
            continue
        depth += c == "("
        depth -= c == ")"
        if depth < 0:
            _fail(f"malformed {what} {text!r}: expected a single function call", hint=hint)
        i += 1
    try:
        exprs.scan(text)
    except plpy.Error as e:
        _fail(f"malformed {what} {text!r}: {_msg(e)}", hint=hint)
    return re.sub(r"\s+", "", name), args.strip()


def _msg(e) -> str:
    m = e.args[0] if e.args else str(e)
    return re.sub(r"^plpy\.(Error|Fatal): ", "", str(m))


def _relation(name: str) -> Identifier:
    """A table named as core.spi.qualified (or format('%I.%I')) writes it, for generated SQL."""
    return written_name(name)


def _column(oid: int, column: str) -> dict:
    if column in tables.SYSTEM_COLUMNS:
        _fail(f"{column!r} is a system column")
    row = one("SELECT a.attnum, format_type(a.atttypid, a.atttypmod) AS type, format_type(a.atttypid, NULL) AS kind, "
              "t.typname, n.nspname "
              "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace n ON n.oid = t.typnamespace "
              "WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
              oid, column, types=["oid", "name"])
    if row is None:
        _fail(f"column {column!r} does not exist in {display_name(oid)}", sqlstate="42703")
    is_media = row["nspname"] == "pxt" and row["typname"] in ("image", "video", "audio", "document")
    row["media"] = row["typname"] if is_media else None
    return row


def _probe_value(oid: int, col: dict, full: str):
    """A value of the source column's type to evaluate the embedding on once (for its type and
    dimension): a fixed text, a tiny generated image, or else the column's first value."""
    if col["kind"] in TEXT_TYPES:
        return PROBE_TEXT
    if col["media"] == "image":
        import io

        from ..media import image  # lazy: Pillow loads for image inputs only

        buf = io.BytesIO()
        image.Image.new("RGB", (16, 16), (120, 160, 200)).save(buf, "PNG")
        return store_bytes(buf.getvalue(), "png")
    row = one(gen.first_value(_relation(full), col["name"]).as_string())
    if row is None:
        _fail(f"cannot determine the embedding's dimension: column {col['name']!r} of {display_name(oid)} has no values yet",
                   hint="insert a row first (or index a text or image column)")
    return row["v"]


def _probe(call: gen.Call, in_type: str, value, what: str) -> tuple[str, int]:
    """Evaluate the call once on ``value``: (vector type, dimensions), or a clear error."""
    try:
        plan = plpy.prepare(gen.probe(call, in_type).as_string(), ["text"])
        row = plpy.execute(plan, [value])[0]
    except plpy.SPIError as e:
        # the hint only where the call itself is wrong (no such function / signature), not for
        # an error the function raised (a model not installed, a host not allowed...)
        wrong_call = getattr(e, "sqlstate", None) in ("42883", "42725", "42601", "42804")
        _fail(f"{what} cannot be evaluated: {_msg(e)}",
              hint="give the function call without its input (the column is inserted as the first argument)"
              if wrong_call else None)
    if row["t"] not in ("vector", "halfvec"):
        _fail(f"{what} returns {row['t']}, not a vector", hint="an embedding function returns vector or halfvec")
    if row["v"] is None:
        _fail(f"{what} returned NULL for a probe value {value!r}")
    return row["t"], row["v"].count(",") + 1


def _int_param(name: str, v, lo: int, hi: int) -> int:
    if v is None or not lo <= v <= hi:
        _fail(f"{name} must be between {lo} and {hi}, not {v}")
    return int(v)


def _index_relname(schema: str, table: str, name: str) -> str:
    base = f"{table}_{name}_hnsw"
    for i in range(1000):
        cand = base if i == 0 else f"{base}{i}"
        while len(cand.encode()) > 63:
            base = base[:-1]
            cand = base if i == 0 else f"{base}{i}"
        if one("SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NULL AS free", schema, cand)["free"]:
            return cand
    _fail("could not find a free index name")


def add_index(tbl, column, embedding, metric, dtype, m, ef_construction, name, query_embedding, on_error):
    oid = managed(tbl)
    full = qualified(oid)  # the storage, for SQL
    col = _column(oid, column)
    col["name"] = column
    if metric not in METRICS:
        _fail(f"unknown metric {metric!r}: use 'cosine', 'ip' (inner product) or 'l2'")
    if dtype not in DTYPES:
        _fail(f"unknown dtype {dtype!r}: use 'fp32' (vector) or 'fp16' (halfvec)")
    vtype = DTYPES[dtype]
    m = _int_param("m", m, 2, 100)
    ef_construction = _int_param("ef_construction", ef_construction, 4, 1000)
    if ef_construction < 2 * m:
        _fail(f"ef_construction ({ef_construction}) must be at least 2 * m ({2 * m})")
    if embedding is None:
        if col["media"] == "image":
            embedding = DEFAULT_IMAGE_EMBEDDING
        elif col["kind"] in TEXT_TYPES:
            embedding = DEFAULT_TEXT_EMBEDDING
        else:
            _fail(f"no default embedding for column {column!r} of type {col['type']}",
                       hint="pass embedding => 'schema.function(...)'")
    fname, args = parse_call(embedding)
    call = gen.Call(fname, args)
    _, dims = _probe(call, col["type"], _probe_value(oid, col, full), f"embedding {embedding!r}")
    if dims > MAX_DIMS[vtype]:
        _fail(f"embedding {embedding!r} has {dims} dimensions; HNSW indexes {vtype} up to {MAX_DIMS[vtype]}",
                   hint="use dtype => 'fp16' (halfvec, up to 4000 dimensions)" if vtype == "vector" else None)
    if query_embedding is not None:
        qname, qargs = parse_call(query_embedding, "query_embedding")
        _, qdims = _probe(gen.Call(qname, qargs), "text", PROBE_TEXT, f"query_embedding {query_embedding!r}")
        if qdims != dims:
            _fail(f"query_embedding has {qdims} dimensions, embedding has {dims}")
    taken = set(_names(oid)) | {r["attname"] for r in plpy.execute(plpy.prepare(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped", ["oid"]), [oid])}
    if name is None:
        name = f"{column}_embedding"
        for i in range(2, 1000):
            if name not in taken:
                break
            name = f"{column}_embedding_{i}"
    check_column_name(name)
    if name in _names(oid):
        _fail(f"{display_name(oid)} already has an embedding index {name!r}")
    expr = gen.column_expression(call, column, _vs(), vtype, dims)
    plpy.execute(plpy.prepare("SELECT pxt.add_computed_column($1, $2, $3, $4)", ["text", "text", "text", "text"]),
                 [full, name, expr, on_error])
    func = one("""SELECT p.oid::regprocedure::text AS f, p.proargnames AS argnames
        FROM pxt.column_defs d JOIN pg_rewrite r ON r.ev_class = d.expr_view
        JOIN pg_depend dep ON dep.classid = 'pg_rewrite'::regclass AND dep.objid = r.oid
             AND dep.refclassid = 'pg_proc'::regclass
        JOIN pg_proc p ON p.oid = dep.refobjid
        WHERE d.relid = $1 AND d.name = $2 AND p.proname = (parse_ident($3))[array_length(parse_ident($3), 1)]
        LIMIT 1""", oid, name, fname, types=["oid", "name", "text"])
    if func is None:
        _fail(f"internal error: cannot find the function of embedding {embedding!r}")
    if query_embedding is None and "kind" in (func["argnames"] or []) and not re.search(r"\bkind\s*=>", args):
        # e.g. e5: documents are embedded as passages, queries as queries
        query_embedding = call.query_form()
    # in the storage's schema, named after the table as users know it (its face)
    rel = one("SELECT n.nspname AS s, coalesce(f.relname, c.relname) AS r FROM pg_class c JOIN pg_namespace n "
              "ON n.oid = c.relnamespace JOIN pxt.tables t ON t.relid = c.oid LEFT JOIN pg_class f ON f.oid = t.face "
              "WHERE c.oid = $1", oid, types=["oid"])
    schema = rel["s"]
    idx = _index_relname(schema, rel["r"], name)
    plpy.execute(gen.create_index(idx, _relation(full), name, _vs(), vtype, metric, m, ef_construction).as_string())
    vec_attnum = one("SELECT attnum FROM pg_attribute WHERE attrelid = $1 AND attname = $2", oid, name,
                     types=["oid", "name"])["attnum"]
    plpy.execute(plpy.prepare("""
        INSERT INTO pxt.embedding_indexes (relid, name, source_attnum, vector_attnum, embedding, query_embedding,
            func, metric, precision, dims, index_rel, params)
        VALUES ($1, $2, $3, $4, $5, $6, $7::regprocedure, $8, $9, $10, format('%I.%I', $11::text, $12::text)::regclass,
                jsonb_build_object('m', $13::int, 'ef_construction', $14::int))""",
        ["oid", "text", "int2", "int2", "text", "text", "text", "text", "text", "int", "text", "text", "int", "int"]),
        [oid, name, col["attnum"], vec_attnum, embedding, query_embedding, func["f"], metric,
         "fp16" if vtype == "halfvec" else "fp32", dims, schema, idx, m, ef_construction])
    _RESOLVED.clear()
    return name


# Live indexes: the vector column is a live computed column (versioning may drop a column
# softly, keeping it for revert: its index is then hidden, and comes back with it): gen.LIVE.
_INDEX_COLUMN, _INDEX_NAMES = gen.INDEX_COLUMN.as_string(), gen.INDEX_NAMES.as_string()
_LIST_INDEXES = gen.LIST_INDEXES.as_string()


def drop_index(tbl: str, name: str) -> None:
    oid = managed(tbl)
    row = one(_INDEX_COLUMN, oid, name, types=["oid", "text"])
    if row is None:
        have = _names(oid)
        _fail(f"no embedding index {name!r} on {display_name(oid)}",
                   hint=f"its embedding indexes: {', '.join(have)}" if have else "it has no embedding indexes")
    # the HNSW index goes with its column; the event trigger forgets the catalog row then (a
    # versioned, soft drop keeps both, hidden, for revert)
    tables.drop_column(display_name(oid), row["col"])
    _RESOLVED.clear()


def _names(oid: int) -> list:
    return [r["name"] for r in plpy.execute(plpy.prepare(_INDEX_NAMES, ["oid"]), [oid])]


_RESOLVE = gen.RESOLVE.as_string()
_plans: dict = {}


def _plan(query: str, types: list):
    p = _plans.get(query)
    if p is None:
        if len(_plans) > 200:
            _plans.clear()
        p = _plans[query] = plpy.prepare(query, types)
    return p


# one prepared query for the common case (a query embeds through it on every call)
_FAST_Q = gen.RESOLVE_BY_NAME.as_string()


def resolve(tbl: str, column: str, index) -> dict:
    """The embedding index of ``tbl.column`` (``index`` names it when there are several)."""
    try:
        rows = plpy.execute(_plan(_FAST_Q, ["text", "name", "text"]), [tbl, column, index])
    except plpy.SPIError:
        rows = []  # e.g. a malformed name: the slow path below says what is wrong
    if len(rows) == 1:
        return dict(rows[0])
    oid = managed(tbl)
    rows = plpy.execute(_plan(_RESOLVE, ["oid", "name", "text"]), [oid, column, index])
    if not rows:
        full = display_name(oid)
        if index is not None:
            have = [r["name"] for r in plpy.execute(_plan(_RESOLVE, ["oid", "name", "text"]), [oid, column, None])]
            _fail(f"no embedding index {index!r} on column {column!r} of {full}",
                       hint=f"its embedding indexes: {', '.join(have)}" if have else None)
        _column(oid, column)
        _fail(f"column {column!r} of {full} has no embedding index",
                   hint="add one: " + gen.add_index_hint(full, column))
    if len(rows) > 1:
        _fail(f"column {column!r} of {display_name(oid)} has {len(rows)} embedding indexes: "
                   f"{', '.join(r['name'] for r in rows)}", hint="name one with index => '...'")
    ix = dict(rows[0])
    ix["table"] = qualified(oid)  # the storage, for SQL
    return ix


_CACHE: "collections.OrderedDict" = collections.OrderedDict()
CACHE_SIZE = 256


MEDIA_PREFIXES = ("/", "file://", "media://", "http://", "https://", "pxt-frame:",
                  "s3://", "gs://", "az://", "abfs://", "abfss://", "r2://")


def _is_media_reference(query: str) -> bool:
    return isinstance(query, str) and query.startswith(MEDIA_PREFIXES)


def query_vector(ix: dict, query: str) -> str:
    """The query's embedding with the index's function (the query form when there is one);
    cached per backend (media references: per statement), so a plan that calls pxt.embed per
    row still embeds once."""
    if query is None:
        _fail("the query must not be NULL")
    # a media column's index with a text query function (CLIP): a query that is a media
    # reference is embedded like the column's values (image -> similar images), text by the other
    by_text = ix["query_embedding"] and not (ix["source_kind"] not in TEXT_TYPES and _is_media_reference(query))
    call, in_type = (ix["query_embedding"], "text") if by_text else (ix["embedding"], ix["source_type"])
    key = (ix["relid"], ix["name"], call, query)
    if not by_text and ix["source_kind"] not in TEXT_TYPES:
        key += (_stamp(),)  # a media reference: the file behind it may change between statements
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    fname, args = parse_call(call)
    try:
        v = plpy.execute(_plan(gen.embed_query(gen.Call(fname, args), in_type).as_string(), ["text"]), [query])[0]["v"]
    except plpy.SPIError as e:
        _fail(f"cannot embed the query with {call}: {_msg(e)}")
    if v is None:
        _fail(f"the embedding of query {query!r} is NULL (e.g. an empty text)")
    _CACHE[key] = v
    if len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return v


_RESOLVED: dict = {}  # (tbl, column, index) -> (statement stamp, resolved index)


def _stamp() -> str:
    return plpy.execute(_plan("SELECT statement_timestamp()::text AS s", []))[0]["s"]


def embed(tbl: str, column: str, query: str, index) -> str:
    """pxt.embed: in an index scan PostgreSQL also calls it for each returned row's ORDER BY
    value, so the index lookup is kept for the statement and the vector comes from the cache."""
    key, stamp = (tbl, column, index), _stamp()
    hit = _RESOLVED.get(key)
    if hit is None or hit[0] != stamp:
        if len(_RESOLVED) > 100:
            _RESOLVED.clear()
        hit = _RESOLVED[key] = (stamp, resolve(tbl, column, index))
    return query_vector(hit[1], query)


ITERATIVE = ("off", "relaxed_order", "strict_order")


def _filter_sql(flt):
    if flt is None or not str(flt).strip():
        return gen.filter_condition(None)
    try:
        exprs.scan(flt)
    except plpy.Error as e:
        _fail(f"invalid filter {flt!r}: {_msg(e)}", hint="a boolean SQL expression over the table's columns")
    return gen.filter_condition(flt)


def _hidden_columns(relid: int) -> list:
    """Columns left out of the returned row: vectors (large, meaningless to read) and internals."""
    rows = plpy.execute(_plan("SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 "
                              "AND NOT attisdropped AND (attname LIKE '\\_pxt\\_%' OR atttypid IN "
                              "(SELECT oid FROM pg_type WHERE typname IN ('vector', 'halfvec', 'sparsevec')))",
                              ["oid"]), [relid])
    return [r["attname"] for r in rows]


_GUC_READ = ("SELECT current_setting('hnsw.ef_search') AS ef, current_setting('hnsw.iterative_scan') AS it, "
             "current_setting('hnsw.max_scan_tuples') AS mx")
_GUC_WRITE = ("SELECT set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', $2, true), "
              "set_config('hnsw.max_scan_tuples', $3, true)")
_LOADED: dict = {}


class _Settings:
    """hnsw.* for one query, transaction-locally, then the previous values back. ef_search
    defaults to 10 candidates per result (or the session's value, if more): recall first."""

    def __init__(self, k: int, ef_search, iterative_scan, max_scan_tuples):
        self.k, self.ef, self.it, self.mx = k, ef_search, iterative_scan, max_scan_tuples

    def __enter__(self):
        if not _LOADED:  # pgvector's GUCs exist once its library is loaded
            plpy.execute(gen.load_pgvector(_vs()).as_string())
            _LOADED["vector"] = True
        old = plpy.execute(_plan(_GUC_READ, []))[0]
        self.old = [old["ef"], old["it"], old["mx"]]
        ef = self.ef if self.ef is not None else max(int(old["ef"]), min(10 * self.k, 1000))
        new = [str(ef), self.it or old["it"], str(self.mx) if self.mx is not None else old["mx"]]
        plpy.execute(_plan(_GUC_WRITE, ["text", "text", "text"]), new)

    def __exit__(self, *exc):
        plpy.execute(_plan(_GUC_WRITE, ["text", "text", "text"]), self.old)


def _search_settings(k: int, ef_search, iterative_scan, max_scan_tuples) -> _Settings:
    if k is None or k < 1:
        _fail(f"k must be at least 1, not {k}")
    if iterative_scan not in ITERATIVE:
        _fail(f"iterative_scan must be one of {', '.join(ITERATIVE)}, not {iterative_scan!r}")
    if ef_search is not None:
        ef_search = _int_param("ef_search", ef_search, 1, 1000)
    if max_scan_tuples is not None:
        max_scan_tuples = _int_param("max_scan_tuples", max_scan_tuples, 1, 2 ** 31 - 1)
    return _Settings(k, ef_search, iterative_scan, max_scan_tuples)


def _run(sql: str, types: list, args: list, what: str):
    try:
        return plpy.execute(_plan(sql, types), args)
    except plpy.SPIError as e:
        _fail(f"{what} failed: {_msg(e)}")


def search(tbl, column, query, k, flt, index, ef_search, iterative_scan, max_scan_tuples):
    ix = resolve(tbl, column, index)
    settings = _search_settings(k, ef_search, iterative_scan, max_scan_tuples)
    cond = _filter_sql(flt)
    qv = query_vector(ix, query)
    vtype = "halfvec" if ix["precision"] == "fp16" else "vector"
    sql = gen.search(_relation(ix["table"]), ix["vector"], _vs(), ix["metric"], vtype, cond).as_string()
    with settings:
        rows = _run(sql, ["text", "int8", "text[]"], [qv, k, _hidden_columns(ix["relid"])], "search")
    return [(r["rowid"], r["score"], r["distance"], r["row"]) for r in rows]


def hybrid_search(tbl, column, query, k, flt, index, language, rrf_k, candidates, ef_search):
    """Reciprocal rank fusion of the vector ranking and the full-text ranking (ts_rank_cd over
    websearch_to_tsquery): score = sum over both lists of 1 / (rrf_k + rank)."""
    ix = resolve(tbl, column, index)
    if ix["source_kind"] not in TEXT_TYPES:
        _fail(f"hybrid search needs a text column; {column!r} is {ix['source_type']}",
                   hint="use pxt.search() for vector-only search")
    if k is None or k < 1:
        _fail(f"k must be at least 1, not {k}")
    if rrf_k is None or rrf_k < 0:
        _fail(f"rrf_k must be at least 0, not {rrf_k}")
    n = candidates if candidates is not None else max(4 * k, 40)
    if n < k:
        _fail(f"candidates ({n}) must be at least k ({k})")
    try:
        cfg = one("SELECT $1::regconfig::text AS c", language)["c"]
    except plpy.SPIError:
        _fail(f"unknown text search configuration {language!r}",
                   hint="see SELECT cfgname FROM pg_ts_config (english, simple, ...)")
    settings = _search_settings(n, ef_search, "relaxed_order", None)
    cond = _filter_sql(flt)
    qv = query_vector(ix, query)
    vtype = "halfvec" if ix["precision"] == "fp16" else "vector"
    sql = gen.hybrid_search(_relation(ix["table"]), ix["vector"], ix["source"], _vs(), ix["metric"], vtype, cfg,
                            cond).as_string()
    with settings:
        rows = _run(sql, ["text", "text", "int8", "float8", "int8", "text[]"],
                    [qv, query, n, rrf_k, k, _hidden_columns(ix["relid"])], "hybrid search")
    return [(r["rowid"], r["score"], r["vector_rank"], r["text_rank"], r["row"]) for r in rows]


def list_indexes(tbl):
    oid = managed(tbl) if tbl is not None else None
    return plpy.execute(plpy.prepare(_LIST_INDEXES, ["oid"]), [oid])
