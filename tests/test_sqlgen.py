"""pixelgres.server.sqlgen without a database: quoting, composition, the versioning statements.

Generated SQL is read back with libpg_query (pglast, PostgreSQL's own parser), so the tests
assert what PostgreSQL would understand — which names, values and statements — rather than
comparing text copied from the implementation.
"""
import ast
import math
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixelgres.server.sqlgen import versioning as gen
from pixelgres.server.sqlgen.compose import SQL, Composed, Identifier, Literal, TypeName, clip, quote_literal

import pglast  # noqa: E402,F401 - a test dependency (pyproject), never skipped
from pglast import ast as pg  # noqa: E402
from pglast import enums  # noqa: E402
from pglast import parse_plpgsql  # noqa: E402
from sqlast import column_refs, int_constants, names, one_statement, walk  # noqa: E402

SQLGEN = Path(__file__).resolve().parent.parent / "python" / "pixelgres" / "server" / "sqlgen"
EVIL = 'a"b; DROP TABLE x; --'


def literal_value(lit: Literal):
    """The value PostgreSQL reads from a Literal: SELECT <literal>."""
    target = one_statement(SQL("SELECT {}").format(lit)).targetList[0].val
    return target


# --- compose: identifiers ----------------------------------------------------------------------
def test_identifier_is_always_quoted_and_doubles_quotes():
    assert Identifier("x").as_string() == '"x"'
    assert Identifier('a"b').as_string() == '"a""b"'
    assert Identifier("s", "t").as_string() == '"s"."t"'
    r = one_statement(SQL("SELECT * FROM {}").format(Identifier("My Schema", EVIL))).fromClause[0]
    assert (r.schemaname, r.relname) == ("My Schema", EVIL)


@given(st.lists(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1)
                .filter(lambda s: len(s.encode()) <= 63), min_size=1, max_size=2))
def test_any_identifier_reads_back_as_itself(parts):
    r = one_statement(SQL("SELECT 1 FROM {}").format(Identifier(*parts))).fromClause[0]
    assert [p for p in (r.schemaname, r.relname) if p is not None] == parts


@pytest.mark.parametrize("bad, error", [
    ((), ValueError), (("",), ValueError), (("a\0b",), ValueError), (("x" * 64,), ValueError),
    (("é" * 32,), ValueError),  # 64 bytes in 32 characters
    ((b"x",), TypeError), ((5,), TypeError), (("ok", None), TypeError),
])
def test_identifier_refuses(bad, error):
    with pytest.raises(error):
        Identifier(*bad)


def test_identifier_limit_is_in_bytes():
    assert Identifier("é" * 31 + "x").as_string() == '"' + "é" * 31 + 'x"'  # 63 bytes
    assert Identifier("x" * 63)


def test_clip_truncates_like_postgresql():
    assert clip("x" * 70) == "x" * 63
    assert clip("é" * 40) == "é" * 31  # a character is never cut in half
    assert clip("short") == "short"
    Identifier(clip("ü" * 100))


# --- compose: literals -------------------------------------------------------------------------
def test_string_literals_quote_like_quote_literal():
    assert Literal("it's").as_string() == "'it''s'"
    assert Literal("a\\b").as_string() == "E'a\\\\b'"
    assert Literal("'\\'").as_string() == "E'''\\\\'''"
    assert Literal("").as_string() == "''"
    assert Literal("ünïcødé ✓").as_string() == "'ünïcødé ✓'"
    assert quote_literal("x'y") == "'x''y'"


@given(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))))
def test_any_string_reads_back_as_itself(s):
    v = literal_value(Literal(s))
    assert isinstance(v, pg.A_Const) and v.val.sval == s


def test_literal_refuses_nul_and_other_types():
    with pytest.raises(ValueError):
        Literal("a\0b")
    for bad in (b"x", [1], {"a": 1}, object(), 1j):
        with pytest.raises(TypeError):
            Literal(bad)


def test_null_bool_int():
    assert Literal(None).as_string() == "NULL"
    assert literal_value(Literal(None)).isnull
    assert Literal(True).as_string() == "true" and Literal(False).as_string() == "false"
    assert literal_value(Literal(12345678901234)).val.fval == "12345678901234"  # beyond int4: a numeric
    assert literal_value(Literal(42)).val.ival == 42


def test_negative_numbers_cannot_merge_into_a_comment():
    # "x -{}" with a bare -1 would read "x --1": a comment eating the rest of the line
    s = SQL("SELECT 1 -{} AS y").format(Literal(-1)).as_string()
    assert "--" not in s
    assert one_statement(s).targetList[0].name == "y"


def test_floats_are_float8_including_nan_and_infinities():
    for v, text in [(1.5, "1.5"), (1e-05, "1e-05"), (-2.0, "-2.0"), (math.nan, "NaN"), (math.inf, "Infinity"),
                    (-math.inf, "-Infinity")]:
        cast = literal_value(Literal(v))
        assert isinstance(cast, pg.TypeCast)
        assert cast.arg.val.sval == text and names(cast.typeName.names)[-1] == "float8"
    assert float(Literal(0.1 + 0.2).as_string().split("'")[1]) == 0.1 + 0.2  # round-trips exactly


# --- compose: SQL and format -------------------------------------------------------------------
def test_format_takes_only_composables():
    q = SQL("SELECT {} FROM {t}")
    with pytest.raises(TypeError):
        q.format("x", t=Identifier("t"))
    with pytest.raises(TypeError):
        q.format(Identifier("x"), t="users; DROP TABLE users")
    with pytest.raises(TypeError):
        q.format(Identifier("x"), t=5)
    assert q.format(Identifier("x"), t=Identifier("t")).as_string() == 'SELECT "x" FROM "t"'


def test_format_placeholders():
    f = SQL("{} {} {1} {name} {{}}").format(SQL("a"), SQL("b"), name=Literal("n"))
    assert f.as_string() == "a b b 'n' {}"
    with pytest.raises(ValueError):
        SQL("{:>5}").format(SQL("x"))
    with pytest.raises(ValueError):
        SQL("{!r}").format(SQL("x"))
    with pytest.raises(ValueError):
        SQL("{0!s}").format(SQL("x"))
    with pytest.raises(IndexError):
        SQL("{} {}").format(SQL("x"))
    with pytest.raises(KeyError):
        SQL("{missing}").format()


def test_sql_takes_only_literals_of_the_source():
    assert SQL("SELECT 1").as_string() == "SELECT 1"
    assert SQL("SELECT 1 " "FROM t").as_string() == "SELECT 1 FROM t"  # adjacent literals are one
    name = "".join(["DROP TABLE ", "x"])
    with pytest.raises(TypeError):
        SQL(name)
    with pytest.raises(TypeError):
        SQL(f"SELECT {len(name)}")
    with pytest.raises(TypeError):
        SQL(Identifier("x"))

    class Sneaky(str):
        pass

    with pytest.raises(TypeError):
        SQL(Sneaky("SELECT 1"))


def test_composables_refuse_f_strings_and_str_format():
    for c in (SQL("x"), Identifier("x"), Literal(1), TypeName("integer"), SQL("x") + SQL("y")):
        with pytest.raises(TypeError):
            f"{c}"  # noqa: B018
        with pytest.raises(TypeError):
            "{}".format(c)


def test_join_and_concatenation():
    j = SQL(", ").join([Identifier("a"), Literal(1), SQL("now()")])
    assert isinstance(j, Composed) and j.as_string() == '"a", 1, now()'
    assert SQL(", ").join([]).as_string() == ""
    assert (SQL("a") + Identifier("b")).as_string() == 'a"b"'
    assert Composed([SQL("x"), SQL("y")]).join(SQL("-")).as_string() == "x-y"
    with pytest.raises(TypeError):
        Composed(["raw"])
    with pytest.raises(TypeError):
        SQL("a") + "b"


# --- compose: type names -----------------------------------------------------------------------
FORMAT_TYPE_OUTPUTS = [
    "integer", "text", "double precision", "character varying(20)", "character varying(20)[]", "numeric(10,2)",
    "numeric(3,-2)", "timestamp(3) with time zone", "time without time zone", "interval day to second(3)",
    "interval year to month", "bit varying(5)", '"char"', "pxt.image", "public.vector(384)", '"My Type"',
    '"my schema"."a""b; c"[]', "geometry(Point,4326)",
]


@pytest.mark.parametrize("text", FORMAT_TYPE_OUTPUTS)
def test_type_names_as_format_type_writes_them(text):
    stmt = one_statement(SQL("CREATE TABLE t (c {})").format(TypeName(text)))
    assert len(stmt.tableElts) == 1  # one column, whatever the type's text
    assert TypeName(text).as_string() == text


@pytest.mark.parametrize("text", [
    "", " ", "integer; DROP TABLE t", "text -- comment", "text /* c */", "'x'", '"unterminated', '""',
    "integer AS x FROM pg_authid", "integer) AS x, (SELECT 1", "int(SELECT 1)", "numeric(1 ,2)", " integer",
    "integer ", "text[", "a..b", "integer\nAS x", "int4 OR true",
])
def test_type_name_refuses_anything_else(text):
    with pytest.raises(ValueError):
        TypeName(text)


def test_sqlgen_imports_no_database_module():
    """compose imports only the standard library, the other modules compose: they run (and
    these tests do) where neither plpy nor psycopg exists."""
    for p in SQLGEN.glob("*.py"):
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.Import):
                mods = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                mods = ["." * n.level + (n.module or "")]
            else:
                continue
            for m in mods:
                assert m in (".compose", "__future__") or m.split(".")[0] in sys.stdlib_module_names, (p.name, m)
    init = ast.parse((SQLGEN / "__init__.py").read_text())
    assert not [n for n in ast.walk(init) if isinstance(n, (ast.Import, ast.ImportFrom))]


# --- versioning generators ---------------------------------------------------------------------
COLS = [gen.Column("id", "integer", 1), gen.Column(EVIL, "text", 2), gen.Column("_pxt_errors", "jsonb", 4)]
TABLE = ("my schema", "My T")


def test_generated_names():
    assert gen.history_table("k1").parts == ("pxt_internal", "hist_k1")
    assert gen.overlay_table("k1").parts == ("pxt_internal", "snap_k1")
    assert gen.version_function("k1").parts == ("pxt_internal", "ver_k1")
    assert gen.history_column(7).parts == ("c7",)
    for bad in ("", None):
        with pytest.raises(ValueError):
            gen.history_table(bad)


def test_column_values_are_checked():
    with pytest.raises(TypeError):
        gen.Column("x", "integer", "1")
    with pytest.raises(TypeError):
        gen.Column("x", "integer", True)
    with pytest.raises(ValueError):
        gen.Column("", "integer", 1)
    with pytest.raises(ValueError):
        gen.Column("x", "integer; DROP TABLE t", 1).type_sql
    assert gen.Column.of({"attnum": 3, "name": "n", "type": "text"}) == gen.Column("n", "text", 3)


def _trigger(late=False, cols=COLS, vkey="k1"):
    return [one_statement(s) for s in gen.trigger_statements(TABLE, vkey, cols, late)]


def _body(create_function):
    [body] = [o.arg[0].sval for o in create_function.options if o.defname == "as"]
    return body


def test_trigger_statements_in_order():
    stmts = _trigger()
    assert [type(s).__name__ for s in stmts] == ["CreateFunctionStmt", "AlterTableStmt"] + ["CreateTrigStmt"] * 7
    fn, default, *trigs = stmts
    assert names(fn.funcname) == ["pxt_internal", "ver_k1"] and fn.replace
    opts = {o.defname: o.arg for o in fn.options}
    assert opts["language"].sval == "plpgsql" and opts["security"].boolval  # SECURITY DEFINER ...
    assert opts["set"].name == "search_path"  # ... with a fixed search_path
    assert [a.val.sval for a in opts["set"].args] == ["pg_catalog", "pg_temp"]
    # every trigger is on the table and runs the function; begin/end for each event, then the guard
    for t in trigs:
        assert (t.relation.schemaname, t.relation.relname) == TABLE
    assert [t.trigname for t in trigs] == ["pxt_version_begin_insert", "pxt_version_end_insert",
                                          "pxt_version_begin_update", "pxt_version_end_update",
                                          "pxt_version_begin_delete", "pxt_version_end_delete", "pxt_guard_version"]
    insert, delete, update, before, after = 4, 8, 16, 2, 0
    assert [(t.timing, t.events, t.row) for t in trigs[:6]] == [
        (before, insert, False), (after, insert, False), (before, update, False), (after, update, False),
        (before, delete, False), (after, delete, False)]
    assert all(names(t.funcname) == ["pxt_internal", "ver_k1"] for t in trigs[:6])
    transitions = [sorted((r.name, r.isNew) for r in t.transitionRels or ()) for t in trigs[:6]]
    assert transitions == [[], [("pxt_new", True)], [], [("pxt_new", True), ("pxt_old", False)], [],
                           [("pxt_old", False)]]
    guard = trigs[6]
    assert not guard.row and guard.timing == before and names(guard.columns) == ["_pxt_v"]
    assert names(guard.funcname) == ["pxt", "_guard_version"]
    # the version column's default reads this table's version setting
    cmd = default.cmds[0]
    assert (default.relation.schemaname, default.relation.relname) == TABLE and cmd.name == "_pxt_v"
    assert "pxt_v.k1" in [n.val.sval for n in walk(cmd.def_) if isinstance(n, pg.A_Const) and
                          isinstance(n.val, pg.String)]


def _plpgsql_queries(fn_sql: str) -> list[str]:
    """The SQL statements of a plpgsql function's body, as plpgsql parsed them."""
    out = []

    def visit(o):
        if isinstance(o, dict):
            if "PLpgSQL_stmt_execsql" in o:
                out.append(o["PLpgSQL_stmt_execsql"]["sqlstmt"]["PLpgSQL_expr"]["query"])
            for v in o.values():
                visit(v)
        elif isinstance(o, list):
            for v in o:
                visit(v)

    visit(parse_plpgsql(fn_sql))
    return out


def test_trigger_body_copies_every_column_to_history():
    fn_sql = gen.trigger_statements(TABLE, "k1", COLS, False)[0].as_string()
    inserts = [one_statement(q) for q in _plpgsql_queries(fn_sql) if q.lstrip().startswith("INSERT INTO \"pxt_internal")]
    assert len(inserts) == 2  # UPDATE and DELETE branches
    for ins in inserts:
        assert (ins.relation.schemaname, ins.relation.relname) == ("pxt_internal", "hist_k1")
        assert [c.name for c in ins.cols] == ["_pxt_rowid", "_pxt_v", "_pxt_v_to", "c1", "c2", "c4"]
        refs = column_refs(ins.selectStmt.targetList)
        assert refs == [("o", "_pxt_rowid"), ("o", "_pxt_v"), ("v",), ("o", "id"), ("o", EVIL), ("o", "_pxt_errors")]


def test_trigger_body_without_columns_and_late_errors():
    fn_sql = gen.trigger_statements(TABLE, "k1", [], True)[0].as_string()
    queries = [one_statement(q) for q in _plpgsql_queries(fn_sql)]
    ins = [q for q in queries if isinstance(q, pg.InsertStmt) and q.relation.relname == "hist_k1"]
    assert [[c.name for c in i.cols] for i in ins] == [["_pxt_rowid", "_pxt_v", "_pxt_v_to"]] * 2
    # late errors are counted in the table itself, not in the transition table
    counted = [q for q in queries if isinstance(q, pg.SelectStmt) and q.intoClause is None
               and any(isinstance(n, pg.SubLink) for n in walk(q))]
    assert counted and any((r.schemaname, r.relname) == TABLE for q in counted for r in walk(q)
                           if isinstance(r, pg.RangeVar))
    early = gen.trigger_body(TABLE, "k1", [], False).as_string()
    assert "My T" not in early


def test_trigger_vkey_is_a_literal_everywhere():
    vkey = "k'1\\x"
    fn, default, *_ = _trigger(vkey=vkey)
    assert names(fn.funcname) == ["pxt_internal", "ver_" + vkey]
    body = _body(fn)
    assert body.count(quote_literal("pxt_v." + vkey)) == 2  # declared default, set_config
    parse_plpgsql(gen.trigger_statements(TABLE, vkey, COLS, False)[0].as_string())  # still valid plpgsql


def test_version_select():
    schema = [gen.Column("id", "integer", 1), gen.Column("old name", "text", 2),
              gen.Column("gone", "character varying(20)", 3)]
    physical = {1: "id", 2: EVIL}  # 2 renamed since, 3 vacuumed
    q = one_statement(gen.version_select(TABLE, gen.history_table("k1"), schema, physical, 7))
    assert q.op == enums.SetOperation.SETOP_UNION and q.all
    live, hist = q.larg, q.rarg
    for branch in (live, hist):  # same columns, as named at version 7
        assert [t.name for t in branch.targetList] == [None, "id", "old name", "gone"]
    assert column_refs(live.targetList[:3]) == [("_pxt_rowid",), ("id",), (EVIL,)]
    assert column_refs(hist.targetList[:3]) == [("_pxt_rowid",), ("c1",), ("c2",)]
    for branch in (live, hist):
        gone = branch.targetList[3].val
        assert isinstance(gone, pg.TypeCast) and gone.arg.isnull and names(gone.typeName.names)[-1] == "varchar"
    # the version is an integer constant in every condition (SELECT 1 is the NOT EXISTS probe)
    assert set(int_constants(live.whereClause)) == {7, 1}
    assert int_constants(hist.whereClause) == [7, 7]
    assert int_constants(hist.fromClause[0].subquery.whereClause) == [7]
    assert live.fromClause[0].relname == "My T" and not live.fromClause[0].inh  # FROM ONLY


@pytest.mark.parametrize("bad", ["7", 7.0, True, None])
def test_versions_must_be_ints(bad):
    h = gen.history_table("k1")
    for make in (lambda: gen.version_select(TABLE, h, COLS, {}, bad), lambda: gen.revert_data(TABLE, h, COLS, bad, None),
                 lambda: gen.inserted_rows(TABLE, bad), lambda: gen.inserted_rows(TABLE, bad, 3),
                 lambda: gen.inserted_rows(TABLE, 3, bad) if bad is not None else gen.inserted_rows(TABLE, bad),
                 lambda: gen.delete_history_through(h, bad), lambda: gen.overlay_missing_ids(TABLE, h, h, bad, None),
                 lambda: gen.snapshot_comment("t", bad)):
        with pytest.raises(TypeError):
            make()


def test_history_table_ddl():
    h = gen.history_table("k1")
    create, index, grant = [one_statement(s) for s in gen.create_history_table(h)]
    assert [c.colname for c in create.tableElts] == ["_pxt_rowid", "_pxt_v", "_pxt_v_to"]
    assert index.relation.relname == "hist_k1" and [p.name for p in index.indexParams] == ["_pxt_v_to"]
    assert grant.objects[0].relname == "hist_k1" and grant.privileges[0].priv_name == "select"
    assert [r.rolename for r in grant.grantees] == ["pxt_reader"]
    adds = [one_statement(s) for s in gen.add_history_columns(h, COLS, {"c1", "other"})]
    assert [(a.cmds[0].def_.colname, names(a.cmds[0].def_.typeName.names)[-1]) for a in adds] == [("c2", "text"),
                                                                                               ("c4", "jsonb")]


def test_inserted_rows():
    """A version's inserted rows: among the k highest rowids by the primary key, or by a scan."""
    ranged = one_statement(gen.inserted_rows(TABLE, 5, 3))
    top = ranged.fromClause[0].subquery
    assert top.fromClause[0].relname == "My T" and not top.fromClause[0].inh
    assert [column_refs(s.node) for s in top.sortClause] == [[("_pxt_rowid",)]]
    assert top.sortClause[0].sortby_dir == enums.SortByDir.SORTBY_DESC and top.limitCount.val.ival == 3
    assert int_constants(ranged.whereClause) == [5]
    scan = one_statement(gen.inserted_rows(TABLE, 5))
    assert scan.fromClause[0].relname == "My T" and int_constants(scan.whereClause) == [5] and scan.limitCount is None


def test_revert_data():
    h = gen.history_table("k1")
    stmts = [one_statement(s) for s in gen.revert_data(TABLE, h, COLS, 5, gen.inserted_rows(TABLE, 5, 3))]
    assert [type(s).__name__ for s in stmts] == ["DeleteStmt", "UpdateStmt", "InsertStmt", "DeleteStmt"]
    delete_new, restore, reinsert, forget = stmts
    assert not delete_new.relation.inh and delete_new.relation.relname == "My T"
    # nothing inserted (an update or a delete): no DELETE of inserted rows
    assert [type(one_statement(s)).__name__ for s in gen.revert_data(TABLE, h, COLS, 5, None)] == [
        "UpdateStmt", "InsertStmt", "DeleteStmt"]
    assert [t.name for t in restore.targetList] == ["id", EVIL, "_pxt_errors"]
    assert [column_refs(t.val) for t in restore.targetList] == [[("h", "c1")], [("h", "c2")], [("h", "c4")]]
    assert [c.name for c in reinsert.cols] == ["id", EVIL, "_pxt_errors", "_pxt_rowid", "_pxt_v"]
    assert reinsert.override == enums.OverridingKind.OVERRIDING_SYSTEM_VALUE
    assert forget.relation.relname == "hist_k1"
    assert all(set(int_constants(s)) <= {5, 3, 1} and 5 in int_constants(s) for s in stmts)
    # a table without columns has no values to restore: the UPDATE is left out, the rest is valid
    assert [type(one_statement(s)).__name__ for s in gen.revert_data(TABLE, h, [], 5, gen.inserted_rows(TABLE, 5))] == [
        "DeleteStmt", "InsertStmt", "DeleteStmt"]


def test_revert_schema_statements():
    h = gen.history_table("k1")
    view, drop, drop_hist = [one_statement(s) for s in gen.revert_add_column(TABLE, h, EVIL, 9, ("s", "v"))]
    assert view.removeType == enums.ObjectType.OBJECT_VIEW
    assert drop.cmds[0].name == EVIL and drop.cmds[0].behavior == enums.DropBehavior.DROP_CASCADE
    assert drop_hist.cmds[0].name == "c9" and drop_hist.cmds[0].missing_ok
    assert len(gen.revert_add_column(TABLE, h, "x", 9)) == 2  # no expression view
    r = one_statement(gen.rename_column(TABLE, "new", EVIL))
    assert (r.subname, r.newname) == ("new", EVIL)


def test_snapshot_overlay():
    ov, snap = gen.overlay_table("s9"), ("my schema", "snap")
    cols = [gen.Column("id", "integer"), gen.Column(EVIL, "numeric(3,-2)")]
    create, comment, owner = [one_statement(s) for s in gen.create_overlay(ov, cols, 'x."snap"', "Alice O'Hara")]
    assert [c.colname for c in create.tableElts] == ["_pxt_rowid", "_pxt_present", "id", EVIL]
    assert comment.comment == 'pixelgres: rows of snapshot x."snap" no longer in its base history'
    assert owner.cmds[0].newowner.rolename == "Alice O'Hara"
    take = one_statement(gen.overlay_take_rows(ov, snap, cols))
    assert [c.name for c in take.cols] == ["_pxt_rowid", "_pxt_present", "id", EVIL]
    assert any(isinstance(n, pg.ParamRef) and n.number == 1 for n in walk(take))
    take_all = one_statement(gen.overlay_take_all(ov, snap, cols))
    assert [c.name for c in take_all.cols] == ["_pxt_rowid", "_pxt_present", "id", EVIL]
    pinned = gen.version_select(TABLE, gen.history_table("k1"), [gen.Column("id", "integer", 1)], {1: "id"}, 3)
    with_base = one_statement(gen.snapshot_over_overlay(snap, ov, cols, pinned))
    alone = one_statement(gen.snapshot_over_overlay(snap, ov, cols, None))
    assert (alone.view.schemaname, alone.view.relname) == snap and alone.replace
    assert alone.query.op == enums.SetOperation.SETOP_NONE
    assert with_base.query.op == enums.SetOperation.SETOP_UNION and with_base.query.all
    ids = one_statement(gen.overlay_missing_ids(TABLE, gen.history_table("k1"), ov, 4, gen.inserted_rows(TABLE, 4, 2)))
    assert 4 in int_constants(ids) and ids.fromClause[0].subquery.op == enums.SetOperation.SETOP_UNION
    ids = one_statement(gen.overlay_missing_ids(TABLE, gen.history_table("k1"), ov, 4, None))
    assert ids.fromClause[0].subquery.op == enums.SetOperation.SETOP_NONE


def test_snapshots_and_time_travel_views():
    select = SQL("SELECT 1")
    view, grant, comment = [one_statement(s) for s in gen.create_snapshot(("s", EVIL), select, "it's v3")]
    assert view.view.relname == EVIL and comment.comment == "it's v3"
    assert gen.snapshot_comment('public."T"', 3) == 'pixelgres snapshot of public."T" at version 3'
    drop_view, drop_table = one_statement(gen.drop_snapshot(("s", "v"))), one_statement(gen.drop_overlay(gen.overlay_table("s9")))
    assert drop_view.removeType == enums.ObjectType.OBJECT_VIEW
    assert drop_table.removeType == enums.ObjectType.OBJECT_TABLE and not drop_table.missing_ok
    temp = one_statement(gen.create_temp_view("My T@3", select))
    assert temp.view.relname == "My T@3" and temp.view.relpersistence == "t"


def test_retention_statements():
    h = gen.history_table("k1")
    d = one_statement(gen.delete_history_through(h, 12))
    assert d.relation.relname == "hist_k1" and int_constants(d) == [12]
    a = one_statement(gen.drop_dropped_column(TABLE, 3))
    assert a.cmds[0].name == "_pxt_dropped_3" and a.cmds[0].missing_ok
    both = one_statement(gen.media_references(TABLE, h, gen.Column(EVIL, attnum=2)))
    union = both.fromClause[0].subquery
    assert union.op == enums.SetOperation.SETOP_UNION and union.all
    assert column_refs(union.larg.targetList) == [(EVIL,)] and column_refs(union.rarg.targetList) == [("c2",)]
    live_only = one_statement(gen.media_references(TABLE, None, gen.Column(EVIL, attnum=2)))
    assert live_only.fromClause[0].subquery.op == enums.SetOperation.SETOP_NONE
    ov = one_statement(gen.overlay_media_references(gen.overlay_table("s9"), EVIL))
    assert column_refs(ov) == [(EVIL,)] * 3  # the value, and its two tests (store, bucket)


def test_every_generated_statement_is_one_statement():
    """Whatever names come in, each generator gives exactly one statement per item."""
    h, ov = gen.history_table(EVIL), gen.overlay_table(EVIL)
    cols = [gen.Column(EVIL, '"a""b; DROP"', 1), gen.Column("--", "text", 2)]
    stmts = (gen.trigger_statements((EVIL, EVIL), EVIL, cols, True) + gen.create_history_table(h)
             + gen.add_history_columns(h, cols, []) + gen.revert_data((EVIL, EVIL), h, cols, 1, gen.inserted_rows((EVIL, EVIL), 1, 2))
             + gen.revert_add_column((EVIL, EVIL), h, EVIL, 1, (EVIL, EVIL))
             + gen.create_overlay(ov, cols, EVIL, EVIL) + gen.create_snapshot((EVIL, EVIL), SQL("SELECT 1"), EVIL)
             + [gen.drop_snapshot((EVIL, EVIL)), gen.drop_overlay(ov)]
             + [gen.version_select((EVIL, EVIL), h, cols, {1: EVIL}, 1), gen.rename_column((EVIL, EVIL), EVIL, EVIL),
                gen.overlay_missing_ids((EVIL, EVIL), h, ov, 1, gen.inserted_rows((EVIL, EVIL), 1)),
                gen.inserted_rows((EVIL, EVIL), 1, 2), gen.count_rows(gen.inserted_rows((EVIL, EVIL), 1)),
                gen.overlay_take_rows(ov, (EVIL, EVIL), cols),
                gen.overlay_take_all(ov, (EVIL, EVIL), cols), gen.snapshot_over_overlay((EVIL, EVIL), ov, cols, None),
                gen.delete_history_through(h, 1), gen.drop_dropped_column((EVIL, EVIL), 1),
                gen.media_references((EVIL, EVIL), h, cols[0]), gen.overlay_media_references(ov, EVIL),
                gen.create_temp_view(EVIL, SQL("SELECT 1"))])
    for s in stmts:
        one_statement(s)
    parse_plpgsql(stmts[0].as_string())
