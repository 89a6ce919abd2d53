"""pixelgres.server.sqlgen.ddl without a database: table DDL, expression views, and the
computed-column trigger functions.

Generated SQL (and the plpgsql of the trigger functions) is read back with libpg_query
(pglast), so the tests assert what PostgreSQL would understand — which names, values,
statements and blocks, in which order — rather than comparing text copied from the
implementation.
"""
import ast
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pixelgres.server.sqlgen import ddl as gen
from pixelgres.server.sqlgen.compose import SQL, Identifier, Literal, TypeName

import pglast  # noqa: E402,F401 - a test dependency (pyproject), never skipped
from pglast import ast as pg  # noqa: E402
from pglast import enums  # noqa: E402
from pglast import parse_plpgsql  # noqa: E402
from sqlast import column_refs, one_statement, strings, walk  # noqa: E402

SERVER = Path(__file__).resolve().parent.parent / "python" / "pixelgres" / "server"
EVIL = 'a"b\'); DROP TABLE x; --'
NAMES = [EVIL, "Mixed Case", "ünïcødé ✓", "x\\y", "it's", "select"]


def rel(r):
    return tuple(p for p in (r.schemaname, r.relname) if p is not None)


def quote_ident(s):
    """PostgreSQL's quote_ident, keywords aside (enough for these names)."""
    return s if re.fullmatch(r"[a-z_][a-z0-9_]*", s) else '"' + s.replace('"', '""') + '"'


# --- plpgsql, read back ------------------------------------------------------------------------
def function_body(stmt):
    """The plpgsql function a CREATE FUNCTION statement defines, as libpg_query parses it."""
    one_statement(stmt)
    (fn,) = parse_plpgsql(stmt.as_string())
    return fn["PLpgSQL_function"]["action"]["PLpgSQL_stmt_block"]["body"]


def expr(query: str):
    """A plpgsql expression's query as a SELECT target (PostgreSQL parses it that way)."""
    return one_statement("SELECT " + query).targetList[0].val


def events(body, in_handler=False):
    """The statements of a plpgsql body, in order, nested ones included: (kind, node, in an
    exception handler?)."""
    for s in body:
        (kind, node), = s.items()
        yield kind, node, in_handler
        for key, value in node.items():
            if key == "exceptions":
                for exc in value["PLpgSQL_exception_block"]["exc_list"]:
                    yield from events(exc["PLpgSQL_exception"]["action"], True)
            elif key in ("then_body", "else_body", "body"):
                yield from events(value, in_handler)
            elif key == "elsif_list":
                for e in value:
                    yield from events(e["PLpgSQL_if_elsif"]["stmts"], in_handler)


def assignments(body, handlers=False):
    """(target column, value) of each ``pxt_row.<col> := <value>``, in order; inside exception
    handlers only if ``handlers``."""
    out = []
    for kind, node, in_handler in events(body):
        if kind == "PLpgSQL_stmt_assign" and (handlers or not in_handler):
            target, value = node["expr"]["PLpgSQL_expr"]["query"].split(":=", 1)
            ref = column_refs(expr(target))[0]
            if ref[0] == "pxt_row":
                out.append((ref[1], value.strip()))
    return out


def cond(node):
    return node["cond"]["PLpgSQL_expr"]["query"]


def tg_op_branches(body):
    """The INSERT and UPDATE branches of the row trigger function."""
    (node,) = [s["PLpgSQL_stmt_if"] for s in body if "PLpgSQL_stmt_if" in s and cond(s["PLpgSQL_stmt_if"]) == "TG_OP = 'INSERT'"]
    return node["then_body"], node["else_body"]


def raises(body):
    """The RAISE statements of a body: the string constants of their options (message, hint...)."""
    out = []
    for kind, node, _ in events(body):
        if kind == "PLpgSQL_stmt_raise":
            out.append([s for o in node.get("options", []) for s in strings(expr(o["PLpgSQL_raise_option"]["expr"]
                                                                               ["PLpgSQL_expr"]["query"]))])
    return out


# --- a catalog ---------------------------------------------------------------------------------
def computed(name, sql, deps=(), **kw):
    return gen.ColumnDef(name, computed=True, sql=gen.Deparsed(sql), deps=tuple(deps), **kw)


def catalog(columns, plain=("x", "a", "e"), name='ml."My T"'):
    return gen.TriggerTable(gen.parse_name(name), name, 16384, "tk1", columns, frozenset(plain))


COLS = [
    gen.ColumnDef("x"),
    gen.ColumnDef("img", media_type="image"),
    gen.ColumnDef("vec"),                                            # no pg_catalog '=': compared as text
    computed("a", "(pxt_row.x + 1)", ["x"]),                         # eager, abort
    computed("b", "pxt.describe(pxt_row.img)", ["img"], batched=True),
    computed("c", "upper(pxt_row.b)", ["b"]),                        # downstream of a batched column
    computed("d", "pxt.slow(pxt_row.x)", ["x"], deferred=True, on_error="ignore"),
    computed("e", "(pxt_row.a * 2)", ["a", "vec"], on_error="ignore"),
]


def test_pending_columns_are_batched_deferred_or_downstream():
    t = catalog(COLS)
    assert t.pending() == {"b", "c", "d"}
    assert not t.late_errors()
    assert catalog(COLS[:3] + [computed("b", "f(x)", batched=True, on_error="ignore")]).late_errors()


def test_row_trigger_statements():
    fn, trigger = gen.row_trigger(catalog(COLS))
    f = one_statement(fn)
    assert isinstance(f, pg.CreateFunctionStmt) and f.replace
    assert [n.sval for n in f.funcname] == ["pxt_internal", "row_tk1"]
    opts = {o.defname: o.arg for o in f.options}
    assert opts["language"].sval == "plpgsql"
    assert "set" not in opts  # no pinned search_path (triggers.py says why)
    t = one_statement(trigger)
    assert isinstance(t, pg.CreateTrigStmt) and t.replace and t.row and t.trigname == "pxt_compute"
    assert rel(t.relation) == ("ml", "My T")
    assert t.timing == enums.TRIGGER_TYPE_BEFORE
    assert t.events == enums.TRIGGER_TYPE_INSERT | enums.TRIGGER_TYPE_UPDATE
    assert [n.sval for n in t.funcname] == ["pxt_internal", "row_tk1"]


def test_insert_checks_media_refuses_computed_writes_then_computes_eager_columns_in_order():
    insert, _ = tg_op_branches(function_body(gen.row_trigger(catalog(COLS))[0]))
    ifs = [cond(s["PLpgSQL_stmt_if"]) for s in insert if "PLpgSQL_stmt_if" in s]
    # media input first (unless pixelgres's own iterator wrote it), then one refusal per computed column
    assert column_refs(expr(ifs[0]))[0] == ("pxt_row", "img") and "16384" in strings(expr(ifs[0]))
    assert [column_refs(expr(c)) for c in ifs[1:]] == [[("pxt_row", n)] for n in "abcde"]
    assert [("428C9" in r, "cannot write computed column %s of %s" in r, c in r) for r, c in zip(raises(insert[1:6]), "abcde")] \
        == [(True, True, True)] * 5
    # errors reset, then only the columns not left to the statement trigger or the worker, in order
    assert assignments(insert) == [("_pxt_errors", "NULL"), ("a", "(pxt_row.x + 1)"), ("e", "(pxt_row.a * 2)")]


def test_update_guards_then_checks_media_then_recomputes_each_column_on_its_inputs():
    _, update = tg_op_branches(function_body(gen.row_trigger(catalog(COLS))[0]))
    top = [s["PLpgSQL_stmt_if"] for s in update]
    guard, media, per_column = top[0], top[1], top[2:]
    assert cond(guard) == "pxt_depth <= 1"
    assert [("cannot write computed column %s of %s" in r, c in r) for r, c in zip(raises(guard["then_body"]), "abcde")] \
        == [(True, True)] * 5
    assert ("pxt_row", "img") in column_refs(expr(cond(media)))
    assert len(per_column) == 5
    for c, node in zip("abcde", per_column):
        forced = expr(cond(node))
        assert c in strings(forced)  # 'c' = ANY(pxt_force): a recompute names it
        assert assignments(node["then_body"])[:1] == [("_pxt_errors", f"pxt_row._pxt_errors - '{c}'")]
    a, b, c, d, e = (assignments(n["then_body"]) for n in per_column)
    assert a[1:] == [("a", "(pxt_row.x + 1)")]
    assert b[1:] == [("b", "NULL")]  # left to the statement trigger
    assert c[1:] == [("c", "upper(pxt_row.b)")]
    assert d[1:] == [("d", "pxt.slow(pxt_row.x)"), ("d", "NULL")]  # only when the worker asks
    assert "pxt_asked" in str(per_column[3]["then_body"])
    assert e[1:] == [("e", "(pxt_row.a * 2)")]


def test_changes_of_types_without_a_pg_catalog_equality_compare_as_text():
    _, update = tg_op_branches(function_body(gen.row_trigger(catalog(COLS))[0]))
    e = expr(cond(update[-1]["PLpgSQL_stmt_if"]))  # e reads a (plain) and vec (not)
    casts = [column_refs(n.arg) for n in walk(e) if isinstance(n, pg.TypeCast)]
    assert sorted(casts) == [[("old", "vec")], [("pxt_row", "vec")]]
    assert {("pxt_row", "a"), ("old", "a")} <= set(column_refs(e))


def test_on_error_abort_raises_with_column_and_table_ignore_records_the_error():
    _, update = tg_op_branches(function_body(gen.row_trigger(catalog(COLS))[0]))
    a_block = update[2]["PLpgSQL_stmt_if"]["then_body"]
    (r,) = raises(a_block)
    assert "computed column %s of %s failed for row (%s): %s" in r and "a" in r and 'ml."My T"' in r
    assert assignments(a_block, handlers=True)[-1][0] == "a"  # no NULL written: the statement fails
    e_block = update[6]["PLpgSQL_stmt_if"]["then_body"]
    assert raises(e_block) == []
    handled = [a for a in assignments(e_block, handlers=True) if a not in assignments(e_block)]
    assert [t for t, _ in handled] == ["e", "_pxt_errors"] and handled[0][1] == "NULL"
    assert "e" in strings(expr(handled[1][1]))  # jsonb_build_object('e', ...)


def test_no_row_trigger_without_computed_columns_or_media():
    assert gen.row_trigger(catalog([gen.ColumnDef("x"), gen.ColumnDef("y")])) == []
    assert len(gen.row_trigger(catalog([gen.ColumnDef("v", media_type="video")]))) == 2
    assert gen.statement_trigger(catalog(COLS[:4])) == []


def test_statement_trigger_runs_each_batched_column_as_a_batch_in_order():
    cols = COLS[:3] + [computed("b", "pxt.describe(pxt_row.img)", ["img"], batched=True),
                       computed("z", "pxt.embed(pxt_row.x)", ["x"], batched=True, deferred=True, on_error="ignore")]
    fn, *triggers = gen.statement_trigger(catalog(cols))
    assert [n.sval for n in one_statement(fn).funcname] == ["pxt_internal", "stmt_tk1"]
    for t, event in zip(map(one_statement, triggers), (enums.TRIGGER_TYPE_INSERT, enums.TRIGGER_TYPE_UPDATE)):
        assert isinstance(t, pg.CreateTrigStmt) and not t.row and t.timing == 0 and t.events == event  # AFTER
        assert rel(t.relation) == ("ml", "My T") and [n.sval for n in t.funcname] == ["pxt_internal", "stmt_tk1"]
        assert [(r.name, r.isNew, r.isTable) for r in t.transitionRels] == [("pxt_new", True, True)]
    body = function_body(fn)
    collects = [n for k, n, _ in events(body) if k == "PLpgSQL_stmt_execsql" and "array_agg" in n["sqlstmt"]["PLpgSQL_expr"]["query"]]
    assert len(collects) == 2
    first, second = (one_statement(n["sqlstmt"]["PLpgSQL_expr"]["query"]) for n in collects)
    assert ("n", "b") in column_refs(first.whereClause) and "pixelgres.recompute" not in strings(first.whereClause)
    assert ("n", "z") in column_refs(second.whereClause) and "pixelgres.recompute" in strings(second.whereClause)
    writes = [one_statement(n["sqlstmt"]["PLpgSQL_expr"]["query"]) for k, n, h in events(body)
              if k == "PLpgSQL_stmt_execsql" and not h and n["sqlstmt"]["PLpgSQL_expr"]["query"].startswith("UPDATE")]
    assert [(rel(w.relation), w.targetList[0].name) for w in writes] == [(("ml", "My T"), "b"), (("ml", "My T"), "z")]
    assert not writes[0].relation.inh  # ONLY
    handlers = [(k, n) for k, n, h in events(body) if h]
    # b aborts (ending the batch first); z records its error in _pxt_errors
    assert [k for k, _ in handlers].count("PLpgSQL_stmt_raise") == 3  # RAISE (re-raise) x2, b's RAISE
    err_writes = [one_statement(n["sqlstmt"]["PLpgSQL_expr"]["query"]) for k, n in handlers
                  if k == "PLpgSQL_stmt_execsql" and "_pxt_errors" in n["sqlstmt"]["PLpgSQL_expr"]["query"]]
    assert len(err_writes) == 1 and "z" in strings(err_writes[0])


def test_hostile_names_stay_names_in_the_trigger_functions():
    table = ("ml", EVIL)
    name = "ml." + quote_ident(EVIL)
    cols = [gen.ColumnDef(EVIL), gen.ColumnDef("ünï ✓", media_type="image"),
            computed("Mixed Case", 'upper(pxt_row."a""b\'); DROP TABLE x; --")', [EVIL], on_error="ignore"),
            computed("x\\y", 'pxt.f(pxt_row."Mixed Case")', ["Mixed Case"], batched=True)]
    t = gen.TriggerTable(table, name, 7, "tk", cols, frozenset())
    stmts = gen.row_trigger(t) + gen.statement_trigger(t)
    assert len(stmts) == 5
    for s in stmts:
        one_statement(s)
    insert, update = tg_op_branches(function_body(stmts[0]))
    assert assignments(insert)[1][0] == "Mixed Case"
    refs = {r for _, node, _ in events(update) if "cond" in node for r in column_refs(expr(cond(node)))}
    assert {("pxt_row", EVIL), ("old", EVIL), ("pxt_row", "ünï ✓")} <= refs
    assert any(name in r for r in raises(insert))  # the table's name is a value in messages
    assert rel(one_statement(stmts[1]).relation) == table
    body = function_body(stmts[2])
    writes = [(h, one_statement(n["sqlstmt"]["PLpgSQL_expr"]["query"])) for k, n, h in events(body)
              if k == "PLpgSQL_stmt_execsql" and n["sqlstmt"]["PLpgSQL_expr"]["query"].startswith("UPDATE")]
    # one set-based write-back, and the row-by-row one its exception handler falls back to
    assert [(h, rel(w.relation), w.targetList[0].name) for h, w in writes] == [(False, table, "x\\y"),
                                                                             (True, table, "x\\y")]


def test_function_names_and_existence_check():
    fn = gen.row_function("tk1")
    (target,) = one_statement(gen.function_exists(fn)).targetList
    (signature,) = strings(target.val)
    f = one_statement("DROP FUNCTION " + signature).objects[0]  # reads as the function
    assert [n.sval for n in f.objname] == ["pxt_internal", "row_tk1"] and not f.objargs
    d = one_statement(gen.drop_function(gen.statement_function("tk1")))
    assert d.behavior == enums.DropBehavior.DROP_CASCADE
    assert [n.sval for n in d.objects[0].objname] == ["pxt_internal", "stmt_tk1"]


# --- expressions ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [
    "1); DROP TABLE x; --", "(SELECT 1)", "x FROM y", "a; b", "E'\\x'", "e'x'", "&'x'", "$$x$$", "a -- c",
    "a /* c */", "(a", "a)", "'open", '"open', "x\\y", "", "   ", "delete", None, 5,
])
def test_expression_refuses_what_the_scan_refuses(bad):
    with pytest.raises(gen.ExpressionError):
        gen.Expression(bad)


def test_expression_view_holds_the_expression_in_parentheses():
    view = gen.expression_view(42)
    e = gen.Expression('upper("Mixed Case") || \'x;y -- z\'')
    v = one_statement(gen.create_expression_view(view, gen.parse_name('ml."My T"'), e))
    assert isinstance(v, pg.ViewStmt) and rel(v.view) == ("pxt_internal", "expr_42")
    (target,) = v.query.targetList
    assert target.name == "pxt_value" and strings(target.val) == ["x;y -- z"]
    only, probe = v.query.fromClause
    assert rel(only) == ("ml", "My T") and not only.inh and only.alias.aliasname == "pxt_row"
    assert probe.alias.aliasname == "pxt_probe"
    with pytest.raises(TypeError):
        gen.create_expression_view(view, ("ml", "t"), "1")  # the user's text, unscanned


def test_deparsed_and_text_cast():
    d = gen.Deparsed("'const'")
    assert one_statement(SQL("SELECT {}").format(gen.cast_to_text(d))).targetList[0].val.typeName.names[-1].sval == "text"
    with pytest.raises(TypeError):
        gen.cast_to_text("'const'")
    for bad, error in ((None, TypeError), (b"x", TypeError), ("", ValueError), ("  ", ValueError), ("a\0", ValueError)):
        with pytest.raises(error):
            gen.Deparsed(bad)


def _calls(name: str) -> list[str]:
    """Server files that call ``name`` (as a name or an attribute)."""
    out = []
    for p in sorted(SERVER.rglob("*.py")):
        for n in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(n, ast.Call):
                f = n.func
                if (f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)) == name:
                    out.append(p.relative_to(SERVER).as_posix())
    return sorted(set(out))


def test_deparsed_text_comes_only_from_exprs_analyze():
    """Deparsed is trusted text: only the code that reads pg_get_viewdef may make one."""
    assert _calls("Deparsed") == ["ddl/exprs.py"]
    assert _calls("Expression") == ["ddl/exprs.py"]


# --- names read back from PostgreSQL ------------------------------------------------------------
@given(st.lists(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1)
                .filter(lambda s: len(s.encode()) <= 63), min_size=1, max_size=2))
def test_parse_name_reads_quote_ident_output(parts):
    assert gen.parse_name(".".join(quote_ident(p) for p in parts)).parts == tuple(parts)


@pytest.mark.parametrize("bad", ["", "My T", "Upper", "a.b.c", '"open', 'a"b', "a;b", "a.", ".a", 'x."y"z', "a .b",
                                 "t; DROP TABLE x", '"x" "y"'])
def test_parse_name_refuses_anything_else(bad):
    with pytest.raises(ValueError):
        gen.parse_name(bad)


def test_parse_name_takes_text_only():
    with pytest.raises(TypeError):
        gen.parse_name(Identifier("x"))


# --- column types ------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["int", "bigint", "varchar( 20 )", "numeric(10, 2)", "DOUBLE PRECISION", "text[]",
                                  "pxt.image", "timestamp with time zone", "int array", "character varying(5)[]",
                                  "interval day to second", "pg_catalog.int4", "national character varying"])
def test_column_types_users_write(text):
    (cmd,) = one_statement(gen.add_column(("s", "t"), "c", gen.ColumnType(text))).cmds
    assert cmd.def_.colname == "c" and cmd.def_.typeName is not None and cmd.def_.constraints is None


@pytest.mark.parametrize("bad", ["int not null", "text primary key", "int references t", "int default 5", "int; DROP",
                                 "'x'", '"x"', "int -- c", "int\n", "", "1int", "int[3]", "setof int", None])
def test_column_type_refuses_anything_but_a_type(bad):
    with pytest.raises(ValueError):
        gen.ColumnType(bad)


# --- table DDL -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_create_table_quotes_every_name(name):
    s = one_statement(gen.create_table((name, name), [(name, gen.ColumnType("int")), ("v", TypeName('"My Type"'))]))
    assert isinstance(s, pg.CreateStmt) and rel(s.relation) == (name, name)
    assert [c.colname for c in s.tableElts] == [name, "v", "_pxt_rowid", "_pxt_errors", "_pxt_v"]
    assert [n.sval for n in s.tableElts[1].typeName.names] == ["My Type"]
    rowid = s.tableElts[2]
    assert {c.contype for c in rowid.constraints} == {enums.ConstrType.CONSTR_IDENTITY, enums.ConstrType.CONSTR_PRIMARY}


def test_manage_table_adds_only_missing_system_columns():
    def kinds(have):
        out = []
        for s in map(one_statement, gen.manage_table(("s", EVIL), have)):
            assert rel(s.relation) == ("s", EVIL)
            out.append(s.cmds[0].def_.colname if isinstance(s, pg.AlterTableStmt)
                       else ("unique " if s.unique else "") + s.indexParams[0].name)
        return out
    assert kinds([]) == ["_pxt_rowid", "unique _pxt_rowid", "_pxt_errors", "_pxt_v"]
    assert kinds(["_pxt_rowid", "_pxt_errors", "_pxt_v"]) == []
    assert kinds(["_pxt_v", "x"]) == ["_pxt_rowid", "unique _pxt_rowid", "_pxt_errors"]
    g = one_statement(gen.grant_reader(("s", EVIL)))
    assert rel(g.objects[0]) == ("s", EVIL) and g.grantees[0].rolename == "pxt_reader"


def test_drops_and_renames():
    d = one_statement(gen.drop_table(("s", EVIL)))
    assert d.behavior == enums.DropBehavior.DROP_CASCADE and [n.sval for n in d.objects[0]] == ["s", EVIL]
    v = one_statement(gen.drop_view(gen.parse_name('pxt_internal."expr_1"'), if_exists=True))
    assert v.missing_ok and v.removeType == enums.ObjectType.OBJECT_VIEW
    assert not one_statement(gen.drop_view(gen.expression_view(1))).missing_ok
    r = one_statement(gen.soft_drop_column(("s", "t"), EVIL, 7))
    assert (r.subname, r.newname) == (EVIL, "_pxt_dropped_7")
    r = one_statement(gen.undrop_column(("s", "t"), 7, EVIL))
    assert (r.subname, r.newname) == ("_pxt_dropped_7", EVIL)
    with pytest.raises(TypeError):
        gen.soft_drop_column(("s", "t"), "c", "7")


def test_status_and_errors_queries():
    s = one_statement(gen.status_query(("s", EVIL), ["a", EVIL]))
    arr = s.targetList[0].val.arg
    assert len(arr.elements) == 6 and not s.fromClause[0].inh
    assert strings(arr) == ["a", "a", EVIL, EVIL]
    assert ("a",) in column_refs(arr) and (EVIL,) in column_refs(arr)
    e = one_statement(gen.errors_query(("s", EVIL)))
    assert rel(e.fromClause[0]) == ("s", EVIL) and not e.fromClause[0].inh


def test_raw_str_is_refused_where_sql_is_expected():
    t = ("s", "t")
    for call in (lambda: gen.drop_table("s.t; DROP TABLE x"), lambda: gen.grant_reader("t"),
                 lambda: gen.add_column(t, "c", "int"), lambda: gen.create_table(t, [("c", "int")]),
                 lambda: gen.create_expression_view(gen.expression_view(1), t, "1"),
                 lambda: gen.drop_function("pxt_internal.row_x"),
                 lambda: gen.ColumnDef("c", computed=True, sql="1); DROP TABLE x; --"),
                 lambda: gen.ColumnDef("c", deps="ab"), lambda: gen.add_column(t, Identifier("c"), TypeName("integer")),
                 lambda: gen.expression_view("1"), lambda: gen.TriggerTable("s.t", "s.t", 1, "k", [])):
        with pytest.raises(TypeError):
            call()
    with pytest.raises(ValueError):
        gen.ColumnDef("c", computed=True)  # a computed column needs its deparsed expression


def test_generators_are_pure():
    src = (SERVER / "sqlgen" / "ddl.py").read_text()
    imported = {n.module for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "re", "collections.abc", "dataclasses", "compose"}


def test_generated_function_bodies_are_literals():
    """The function body is one string constant whatever the names hold (E'' with a backslash)."""
    t = catalog([gen.ColumnDef("x\\y"), computed("it's", "(pxt_row.\"x\\y\" || 'q''s')", ["x\\y"])], plain=())
    fn = one_statement(gen.row_trigger(t)[0])
    (body,) = [o.arg for o in fn.options if o.defname == "as"]
    assert "pxt_row.\"it's\" := (pxt_row.\"x\\y\" || 'q''s')" in body[0].sval
    assert json.dumps(parse_plpgsql(gen.row_trigger(t)[0].as_string()))  # valid plpgsql
    assert Literal("x").as_string() == "'x'"
