"""The SQL of embedding indexes and similarity search (server/ai/embedding_index.py), from plain data.

Pure functions: embedding_index.py reads the catalog (the table, its columns, the index's
row, pgvector's schema) and passes what it found; these return Composables (``.as_string()``
is the text) and never touch a database. Relations are ``Identifier`` objects or
``(schema, name)`` tuples, pgvector's schema an ``Identifier`` (or its name), column names
str, types format_type() text, metrics and vector types one of the fixed names below, sizes
ints.

Text pasted as it is, marked ``TrustedExpression``: an embedding call — the function name and the
argument list ``embedding_index.parse_call`` split it into (a function name and one
parenthesised argument list, the whole call checked by ``ddl.exprs.scan``); PostgreSQL parses
and types it with the input inserted as its first argument — and a search filter, a boolean
expression that passed exprs.scan, pasted in parentheses.

The statements are those embedding_index.py ran before it used this module; only the quoting
of identifiers differs (always quoted).
"""
from __future__ import annotations

from .compose import SQL, Composable, Composed, Identifier, Literal, TrustedExpression, TypeName

Relation = Identifier | tuple[str, str]

CALL_SOURCE = "an embedding call split by embedding_index.parse_call and checked by exprs.scan"
FILTER_SOURCE = "a search filter checked by exprs.scan"

# pgvector's distance operators, the score each makes of a distance (higher is closer)
OPERATORS = {"cosine": SQL("<=>"), "ip": SQL("<#>"), "l2": SQL("<->")}
SCORES = {"cosine": SQL("1 - {d}"), "ip": SQL("-({d})"), "l2": SQL("1 / (1 + {d})")}
OPCLASSES = {"cosine": "cosine", "ip": "ip", "l2": "l2"}
VECTOR_TYPES = ("vector", "halfvec")


# --- inputs ------------------------------------------------------------------------------------
def relation(r: Relation) -> Identifier:
    if isinstance(r, Identifier):
        return r
    if isinstance(r, tuple) and len(r) == 2:
        return Identifier(*r)
    raise TypeError(f"a relation is an Identifier or a (schema, name) tuple, not {r!r}")


def _schema(s: Identifier | str) -> Identifier:
    if isinstance(s, Identifier) and len(s.parts) == 1:
        return s
    if type(s) is str:
        return Identifier(s)
    raise TypeError(f"pgvector's schema is a one-part Identifier or a name, not {s!r}")


def _metric(metric: str) -> str:
    if metric not in OPERATORS:
        raise ValueError(f"unknown metric {metric!r}")
    return metric


def _vtype(vtype: str) -> str:
    if vtype not in VECTOR_TYPES:
        raise ValueError(f"unknown vector type {vtype!r}")
    return vtype


def _int(v, what: str) -> Literal:
    if type(v) is not int or v < 0:
        raise TypeError(f"{what} must be an int >= 0, not {v!r}")
    return Literal(v)


class Call:
    """An embedding function's call without its input: ``name`` and ``args`` as
    embedding_index.parse_call split them (``args`` may be empty). ``with_input`` gives the
    call with an input as its first argument."""

    def __init__(self, name: str, args: str):
        self.name = TrustedExpression(name, CALL_SOURCE)
        self.args = TrustedExpression(args, CALL_SOURCE) if args else None

    def with_input(self, first: Composable) -> Composed:
        if self.args is None:
            return SQL("{}({})").format(self.name, first)
        return SQL("{}({}, {})").format(self.name, first, self.args)

    def query_form(self) -> str:
        """The same call with ``kind => 'query'`` added (e5: queries are embedded as queries,
        documents as passages): the text recorded as the index's query embedding."""
        if self.args is None:
            return SQL("{}(kind => 'query')").format(self.name).as_string()
        return SQL("{}({}, kind => 'query')").format(self.name, self.args).as_string()


def parameter(in_type: str) -> Composed:
    """``$1`` as ``in_type`` (format_type() text): the input a prepared call is evaluated on."""
    return SQL("$1::{}").format(TypeName(in_type))


def vector_type(vs: Identifier | str, vtype: str) -> Identifier:
    """pgvector's ``vector`` or ``halfvec``, schema-qualified (any search_path works)."""
    return Identifier(_schema(vs).parts[0], _vtype(vtype))


def operator(vs: Identifier | str, metric: str) -> Composed:
    """pgvector's distance operator of ``metric``, schema-qualified: ``OPERATOR(s.<=>)``."""
    return SQL("OPERATOR({}.{})").format(_schema(vs), OPERATORS[_metric(metric)])


# --- creating an index -------------------------------------------------------------------------
def probe(call: Call, in_type: str) -> Composed:
    """Evaluate the call once on ``$1`` (text, read as ``in_type``): its type's name and the
    vector as text (for the dimensions). A statement to prepare with one text parameter."""
    return SQL("SELECT (SELECT typname FROM pg_type WHERE oid = pg_typeof(x)) AS t, x::text AS v "
               "FROM (SELECT {} AS x OFFSET 0) s").format(call.with_input(parameter(in_type)))


def first_value(table: Relation, column: str) -> Composed:
    """A column's first non-NULL value, as text."""
    c = Identifier(column)
    return SQL("SELECT {c}::text AS v FROM ONLY {t} WHERE {c} IS NOT NULL LIMIT 1").format(c=c, t=relation(table))


def column_expression(call: Call, column: str, vs: Identifier | str, vtype: str, dims: int) -> str:
    """The computed vector column's expression: the call on ``column``, cast to the index's
    vector type of ``dims`` dimensions (text, for pxt.add_computed_column)."""
    return SQL("({})::{}({})").format(call.with_input(Identifier(column)), vector_type(vs, vtype),
                                      _int(dims, "dims")).as_string()


def create_index(index: str, table: Relation, column: str, vs: Identifier | str, vtype: str, metric: str,
                 m: int, ef_construction: int) -> Composed:
    """The HNSW index on the vector column, with the operator class of ``metric``."""
    opclass = Identifier(_schema(vs).parts[0], _vtype(vtype) + "_" + OPCLASSES[_metric(metric)] + "_ops")
    return SQL("CREATE INDEX {} ON {} USING hnsw ({} {}) WITH (m = {}, ef_construction = {})").format(
        Identifier(index), relation(table), Identifier(column), opclass, _int(m, "m"),
        _int(ef_construction, "ef_construction"))


# --- the catalog's live indexes ----------------------------------------------------------------
# Live indexes: the vector column is a live computed column (versioning may drop a column
# softly, keeping it for revert: its index is then hidden, and comes back with it).
LIVE_JOINS = SQL("""pxt.embedding_indexes e
    JOIN pg_attribute src ON src.attrelid = e.relid AND src.attnum = e.source_attnum AND NOT src.attisdropped
    JOIN pg_attribute vec ON vec.attrelid = e.relid AND vec.attnum = e.vector_attnum AND NOT vec.attisdropped
    JOIN pxt.column_defs cd ON cd.relid = e.relid AND cd.attnum = e.vector_attnum AND cd.expr IS NOT NULL
         AND (to_jsonb(cd) ->> 'dropped_at') IS NULL""")
LIVE = SQL("FROM {}").format(LIVE_JOINS)

# $1 relid, $2 index name
INDEX_COLUMN = SQL("SELECT vec.attname AS col {} WHERE e.relid = $1 AND e.name = $2").format(LIVE)
# $1 relid
INDEX_NAMES = SQL("SELECT e.name {} WHERE e.relid = $1 ORDER BY e.name").format(LIVE)
# $1 relid, $2 source column, $3 index name or NULL
RESOLVE = SQL("""
    SELECT e.relid::oid::int AS relid, e.name, e.embedding, e.query_embedding, e.metric, e.precision, e.dims,
           src.attname AS source, format_type(src.atttypid, src.atttypmod) AS source_type,
           format_type(src.atttypid, NULL) AS source_kind,
           vec.attname AS vector, e.index_rel::text AS index_rel
    {}
    WHERE e.relid = $1 AND src.attname = $2 AND ($3::text IS NULL OR e.name = $3)
    ORDER BY e.name""").format(LIVE)
# one prepared query for the common case (a query embeds through it on every call):
# $1 the table's name as the user wrote it, $2 source column, $3 index name or NULL
RESOLVE_BY_NAME = SQL("""
    SELECT e.relid::oid::int AS relid, e.name, e.embedding, e.query_embedding, e.metric, e.precision, e.dims,
           src.attname AS source, format_type(src.atttypid, src.atttypmod) AS source_type,
           format_type(src.atttypid, NULL) AS source_kind,
           vec.attname AS vector, e.index_rel::text AS index_rel, format('%I.%I', n.nspname, c.relname) AS "table"
    FROM parse_ident($1) AS p
    JOIN pg_namespace n ON n.nspname = CASE WHEN array_length(p, 1) = 1 THEN 'public' ELSE p[1] END
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p[array_length(p, 1)]
    JOIN ({}) ON e.relid = c.oid
    WHERE array_length(p, 1) <= 2 AND src.attname = $2 AND ($3::text IS NULL OR e.name = $3)""").format(LIVE_JOINS)
# $1 relid or NULL for all
LIST_INDEXES = SQL("""
        SELECT pxt._display(e.relid) AS "table", e.name, src.attname AS source_column, vec.attname AS vector_column,
               e.embedding, e.query_embedding, e.metric, e.precision, e.dims, e.index_rel::text AS index, e.params
        {}
        WHERE $1::oid IS NULL OR e.relid = $1 ORDER BY 1, 2""").format(LIVE)


def add_index_hint(table: str, column: str) -> str:
    """How to add an embedding index on ``table.column`` (their names), for a message."""
    return SQL("SELECT pxt.add_embedding_index({}, {})").format(Literal(table), Literal(column)).as_string()


# --- querying ----------------------------------------------------------------------------------
def embed_query(call: Call, in_type: str) -> Composed:
    """The query's vector as text: the call on ``$1`` read as ``in_type``. To prepare, one text parameter."""
    return SQL("SELECT ({})::text AS v").format(call.with_input(parameter(in_type)))


def load_pgvector(vs: Identifier | str) -> Composed:
    """A call of pgvector's library, so that its settings (hnsw.*) exist."""
    return SQL("SELECT {}.vector_dims('[1]'::{})").format(_schema(vs), vector_type(vs, "vector"))


def filter_condition(flt: str | None) -> Composable:
    """`` AND (<filter>)``, or nothing for no filter (None or blank)."""
    if flt is None or not str(flt).strip():
        return SQL("")
    return SQL(" AND ({})").format(TrustedExpression(flt, FILTER_SOURCE))


def search(table: Relation, vector: str, vs: Identifier | str, metric: str, vtype: str, cond: Composable) -> Composed:
    """The k nearest rows: $1 the query vector (text), $2 k, $3 the columns left out of the
    returned row (text[]); ``cond`` from filter_condition. relaxed_order may return the k hits
    slightly out of order: the outer query sorts them."""
    v, op, t, vt = Identifier(vector), operator(vs, metric), relation(table), vector_type(vs, vtype)
    return SQL("""
        WITH hits AS MATERIALIZED (
            SELECT pxt_row._pxt_rowid AS rowid, (pxt_row.{v} {op} $1::{vt})::float8 AS distance
            FROM ONLY {t} pxt_row
            WHERE pxt_row.{v} IS NOT NULL{cond}
            ORDER BY pxt_row.{v} {op} $1::{vt} LIMIT $2)
        SELECT h.rowid, {score} AS score, h.distance,
               to_jsonb(pxt_row) - $3::text[] AS row
        FROM hits h JOIN ONLY {t} pxt_row ON pxt_row._pxt_rowid = h.rowid
        ORDER BY h.distance, h.rowid""").format(
        v=v, op=op, vt=vt, t=t, cond=cond, score=SCORES[_metric(metric)].format(d=SQL("h.distance")))


def hybrid_search(table: Relation, vector: str, source: str, vs: Identifier | str, metric: str, vtype: str,
                  config: str, cond: Composable) -> Composed:
    """Reciprocal rank fusion of the vector ranking and the full-text ranking of ``source``
    under text search configuration ``config``: $1 the query vector (text), $2 the query
    text, $3 candidates per ranking, $4 rrf_k, $5 k, $6 the columns left out of the returned row."""
    v, op, t, vt = Identifier(vector), operator(vs, metric), relation(table), vector_type(vs, vtype)
    cfg = Literal(config)
    # to_tsvector('<cfg>'::regconfig, col): the form an expression GIN index must have to be used
    tsv = SQL("to_tsvector({}::regconfig, pxt_row.{})").format(cfg, Identifier(source))
    return SQL("""
        WITH vec AS MATERIALIZED (
            SELECT rowid, row_number() OVER (ORDER BY distance, rowid) AS r FROM (
                SELECT pxt_row._pxt_rowid AS rowid, pxt_row.{v} {op} $1::{vt} AS distance
                FROM ONLY {t} pxt_row WHERE pxt_row.{v} IS NOT NULL{cond}
                ORDER BY pxt_row.{v} {op} $1::{vt} LIMIT $3) s),
        txt AS MATERIALIZED (
            SELECT rowid, row_number() OVER (ORDER BY rank DESC, rowid) AS r FROM (
                SELECT pxt_row._pxt_rowid AS rowid, ts_rank_cd({tsv}, tq) AS rank
                FROM ONLY {t} pxt_row, websearch_to_tsquery({cfg}::regconfig, $2) tq
                WHERE {tsv} @@ tq{cond}
                ORDER BY rank DESC, rowid LIMIT $3) s),
        fused AS (
            SELECT coalesce(vec.rowid, txt.rowid) AS rowid,
                   coalesce(1.0 / ($4 + vec.r), 0) + coalesce(1.0 / ($4 + txt.r), 0) AS score,
                   vec.r AS vector_rank, txt.r AS text_rank
            FROM vec FULL JOIN txt ON vec.rowid = txt.rowid
            ORDER BY score DESC, rowid LIMIT $5)
        SELECT f.rowid, f.score::float8 AS score, f.vector_rank::int AS vector_rank, f.text_rank::int AS text_rank,
               to_jsonb(pxt_row) - $6::text[] AS row
        FROM fused f JOIN ONLY {t} pxt_row ON pxt_row._pxt_rowid = f.rowid
        ORDER BY f.score DESC, f.rowid""").format(v=v, op=op, vt=vt, t=t, cond=cond, tsv=tsv, cfg=cfg)
