"""pixelgres.server.sqlgen's iterator-view and embedding-index generators, without a database.

As in tests/test_sqlgen.py, generated SQL is read back with PostgreSQL's own parser (pglast):
the tests assert which statements, names, values and operators PostgreSQL would see — that a
hostile name stays one identifier, that text meant for messages stays a string constant —
rather than comparing text copied from the implementation.
"""
import string
from pathlib import Path

import pytest

from pixelgres.server.sqlgen import embeddings as emb
from pixelgres.server.sqlgen import iterators as it
from pixelgres.server.sqlgen.compose import SQL, Identifier, Literal, TrustedExpression, template, written_name

import pglast  # noqa: E402,F401 - a test dependency (pyproject), never skipped
from pglast import ast as pg  # noqa: E402
from pglast import parse_plpgsql, parse_sql  # noqa: E402
from sqlast import column_refs, names, strings, walk  # noqa: E402
from sqlast import one_statement as parse  # noqa: E402

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "pixelgres"
EVIL = 'a"b; DROP TABLE x; --'
MIXED = "Mixed Case"
UNI = "vidéo_帧"
STORE, BASE, ITER = ("ml", EVIL + "_rows"), ("My Schema", MIXED), Identifier("pxt_internal", "iter_500")


def ranges(node):
    return [(r.schemaname, r.relname) for r in walk(node) if isinstance(r, pg.RangeVar)]


def body_of(fn):
    [body] = [o.arg[0].sval for o in fn.options if o.defname == "as"]
    return body


def plpgsql_queries(fn_sql: str) -> list[str]:
    """Every SQL expression and statement plpgsql reads in a function's body."""
    out = []

    def visit(o):
        if isinstance(o, dict):
            if "PLpgSQL_expr" in o:
                out.append(o["PLpgSQL_expr"]["query"])
            for v in o.values():
                visit(v)
        elif isinstance(o, list):
            for v in o:
                visit(v)

    visit(parse_plpgsql(fn_sql))
    return out


def parsed_queries(fn_sql: str):
    """Each statement and expression of a body, parsed (assignments left out)."""
    out = []
    for q in plpgsql_queries(fn_sql):
        for text in (q, "SELECT " + q):
            try:
                out.append(parse(text))
                break
            except Exception:  # noqa: BLE001 - an expression, or an assignment
                continue
    return out


def body_statements(fn_sql: str):
    """The body's SQL statements (not its expressions), parsed."""
    out = []
    for q in plpgsql_queries(fn_sql):
        try:
            out.append(parse(q))
        except Exception:  # noqa: BLE001 - an expression or an assignment, not a statement
            continue
    return out


# --- compose: names PostgreSQL wrote, trusted expressions, templates ----------------------------
@pytest.mark.parametrize("text,parts", [
    ("t", ("t",)), ("ml.frames", ("ml", "frames")), ('ml."My T"', ("ml", "My T")),
    ('"a""b; DROP"."x"', ('a"b; DROP', "x")), ('"vidéo_帧".iter_5', (UNI, "iter_5")),
    ('pxt_internal."iter_500"', ("pxt_internal", "iter_500")), ('"."."."', (".", ".")),
])
def test_written_name_reads_back_postgresql_quoting(text, parts):
    assert written_name(text).parts == parts


@pytest.mark.parametrize("text", [
    "", "My", "a.b.c", "a.", ".a", 'a; DROP TABLE t', '"a" b', '"a', 'a"b', "a b", "a.(b)", '""', "a--",
])
def test_written_name_refuses_what_postgresql_does_not_write(text):
    with pytest.raises(ValueError):
        written_name(text)


def test_trusted_expression_says_where_it_comes_from():
    e = TrustedExpression("pxt.f(x)", "a test")
    assert e.as_string() == "pxt.f(x)" and e.source == "a test"
    for bad in ("", "   ", "a\0b"):
        with pytest.raises(ValueError):
            TrustedExpression(bad, "a test")
    with pytest.raises(TypeError):
        TrustedExpression("pxt.f(x)", "")
    with pytest.raises(TypeError):
        TrustedExpression(SQL("x"), "a test")
    with pytest.raises(TypeError):
        f"{e}"  # noqa: B018 - like every Composable


def test_templates_are_files_of_the_package():
    """The server reads only its installed package directory: the template must be inside it
    (make install copies python/pixelgres/ whole) and only there is one looked for."""
    assert (PACKAGE / "server" / "sqlgen" / "templates" / "iterator_view.sql").is_file()
    for bad in ("../x", "iterator_view.sql", "/etc/passwd", "Iterator", ""):
        with pytest.raises(ValueError):
            template(bad)
    with pytest.raises(OSError):
        template("no_such_template")


def test_iterator_view_template_placeholders_are_the_ones_filled():
    """Each section's placeholders are exactly those its generator fills (a leftover one would
    be a KeyError at run time; an unused argument would be a silent mistake)."""
    sections = template("iterator_view")
    assert sorted(sections) == ["expand", "guard", "trigger"]
    fields = {k: {f for _, f, _, _ in string.Formatter().parse(v.as_string()) if f is not None}
              for k, v in sections.items()}
    assert fields == {
        "expand": {"writing", "trusted", "storage", "columns", "values", "iter_view", "row_text", "base", "what",
                   "base_name"},
        "trigger": {"base", "changed", "writing", "storage", "expand"},
        "guard": {"writing", "store_name", "message", "moved"},
    }
    # the file's own commentary is not part of any body
    assert not any("Placeholders" in v.as_string() for v in sections.values())


# --- iterator views: the call ------------------------------------------------------------------
def test_pixelgres_iterators_may_be_named_without_schema():
    assert it.qualify_known("frame_iterator(video, fps => 1)") == "pxt.frame_iterator(video, fps => 1)"
    assert it.qualify_known(" String_Splitter (t)") == "pxt. String_Splitter (t)"
    assert it.qualify_known("my.frame_iterator(video)") == "my.frame_iterator(video)"
    assert it.qualify_known("frame_iterator_x(video)") == "frame_iterator_x(video)"


def test_a_first_argument_naming_a_column_becomes_that_column():
    head, col, tail = it.first_literal("pxt.frame_iterator('it''s', fps => 1)")
    assert (head, col, tail) == ("pxt.frame_iterator(", "it's", ", fps => 1)")
    call = parse("SELECT " + it.with_column(head, Identifier(EVIL).as_string(), tail)).targetList[0].val
    assert names(call.funcname) == ["pxt", "frame_iterator"]
    assert column_refs(call.args[0]) == [(EVIL,)]  # one identifier, whatever it holds
    # the column as quote_ident writes it (so the recorded call reads as a user writes it), one name only
    assert it.with_column(head, "video", tail) == "pxt.frame_iterator(video, fps => 1)"
    for bad in ("video); DROP TABLE t; --", "a.b", "Video", ""):
        with pytest.raises(ValueError):
            it.with_column(head, bad, tail)
    assert it.first_literal("pxt.frame_iterator(video, 'x')") is None


def test_the_call_is_trusted_explicitly():
    """Only a TrustedExpression (it.call: the call views.py accepted) is pasted as it is."""
    with pytest.raises(TypeError):
        it.create_iterator_view(ITER, BASE, "pxt.frame_iterator(video)")
    with pytest.raises(TypeError):
        it.check_arguments(BASE, SQL("pxt.frame_iterator(video)"))
    assert isinstance(it.call("pxt.f(x)"), TrustedExpression)


# --- iterator views: creating one ----------------------------------------------------------------
def test_iterator_view_reads_the_base_through_the_call():
    call = it.call("pxt.frame_iterator(video, fps => 1)")
    view = parse(it.create_iterator_view(it.new_iterator_view(7), BASE, call))
    assert (view.view.schemaname, view.view.relname) == ("pxt_internal", "iter_new_7")
    q = view.query
    assert [t.name for t in q.targetList] == ["_pxt_base_rowid", None]  # then pxt_it.*
    assert column_refs(q.targetList) == [("pxt_row", "_pxt_rowid"), ("pxt_it",)]
    join = q.fromClause[0]
    assert (join.larg.schemaname, join.larg.relname, join.larg.inh) == (*BASE, False)  # FROM ONLY
    assert join.rarg.lateral and names(join.rarg.functions[0][0].funcname) == ["pxt", "frame_iterator"]
    scalar = parse(it.create_iterator_view(it.new_iterator_view(7), BASE, call, scalar=True)).query
    assert column_refs(scalar.targetList) == [("pxt_row", "_pxt_rowid"), ("pxt_it", "value")]
    assert names(scalar.fromClause[0].rarg.alias.colnames) == ["value"]


def test_arguments_are_checked_over_an_all_null_row():
    q = parse(it.check_arguments(BASE, it.call("pxt.frame_iterator(video, fps => 0)")))
    sub = q.fromClause[0].larg.subquery
    cast = [n for n in walk(sub) if isinstance(n, pg.TypeCast)][0]
    assert names(cast.typeName.names) == list(BASE) and isinstance(cast.arg, pg.A_Const) and cast.arg.isnull


def test_storage_table_columns_are_the_iterators_with_pixelgres_columns_around():
    cols = [("pos", "integer"), (EVIL, "text"), (UNI, "numeric(3,-2)"), ("frame", "pxt.image")]
    create, index = [parse(s) for s in it.create_storage(STORE, cols)]
    assert (create.relation.schemaname, create.relation.relname) == STORE
    defs = [(e.colname, names(e.typeName.names)) for e in create.tableElts]
    assert defs == [("_pxt_base_rowid", ["pg_catalog", "int8"]), ("pos", ["pg_catalog", "int4"]),
                    (EVIL, ["text"]), (UNI, ["pg_catalog", "numeric"]), ("frame", ["pxt", "image"]),
                    ("_pxt_rowid", ["pg_catalog", "int8"]), ("_pxt_errors", ["jsonb"])]
    assert [n.ival for n in walk(create.tableElts[3].typeName.typmods) if isinstance(n, pg.Integer)] == [3, -2]
    assert (index.relation.relname, [p.name for p in index.indexParams]) == (STORE[1], ["_pxt_base_rowid"])
    with pytest.raises(ValueError):
        it.create_storage(STORE, [("x", "text); DROP TABLE t; --")])


def test_generated_object_names():
    assert it.iterator_view(500).parts == ("pxt_internal", "iter_500")
    assert it.expand_function(500).parts == ("pxt_internal", "view_expand_500")
    assert it.trigger_function(500).parts == ("pxt_internal", "view_500")
    assert it.guard_function(500).parts == ("pxt_internal", "view_guard_500")
    ren = parse(it.rename_iterator_view(it.new_iterator_view(7), 500))
    assert (ren.relation.relname, ren.newname) == ("iter_new_7", "iter_500")
    for bad in ("500", 0, -1, True, 5.0, None):
        with pytest.raises(TypeError):
            it.expand_function(bad)


# --- iterator views: maintenance functions -------------------------------------------------------
CALL_TEXT = "pxt.string_splitter(\"a\"\"b\", separators => 'sentence'); DROP TABLE t; --"


def maintenance(columns=("pos", EVIL, UNI), reads=(EVIL, MIXED), trusted=True):
    return it.maintenance(500, "ml." + EVIL, CALL_TEXT, STORE, 'ml."x_rows"', BASE, '"My Schema"."Mixed Case"',
                          ITER, list(columns), list(reads), trusted)


def test_maintenance_statements_in_order():
    stmts = [parse(s) for s in maintenance()]
    kinds = [type(s).__name__ for s in stmts]
    assert kinds == ["CreateFunctionStmt", "GrantStmt", "CreateFunctionStmt"] + ["CreateTrigStmt"] * 4 + [
        "CreateFunctionStmt", "CreateTrigStmt", "CreateTrigStmt"]
    expand, revoke, trig, *base_trigs = stmts[:7]
    guard, guard_stmt, guard_row = stmts[7:]
    assert names(expand.funcname) == ["pxt_internal", "view_expand_500"]
    assert names(trig.funcname) == ["pxt_internal", "view_500"]
    assert names(guard.funcname) == ["pxt_internal", "view_guard_500"]
    assert all(f.replace for f in (expand, trig, guard))
    # the expand and trigger functions run as their owner, with a fixed search_path; the guard does not
    for f in (expand, trig):
        opts = {o.defname: o.arg for o in f.options}
        assert opts["security"].boolval and [a.val.sval for a in opts["set"].args] == ["pg_catalog", "pg_temp"]
    assert "security" not in {o.defname for o in guard.options}
    assert not revoke.is_grant and names(revoke.objects[0].objname) == ["pxt_internal", "view_expand_500"]
    assert [r.rolename for r in revoke.grantees] == [None]  # PUBLIC
    # after each statement on the base, with the transition table each event has
    insert, delete, update, truncate = 4, 8, 16, 32
    assert [(t.trigname, t.events, t.timing, t.row) for t in base_trigs] == [
        ("pxt_view_500_insert", insert, 0, False), ("pxt_view_500_update", update, 0, False),
        ("pxt_view_500_delete", delete, 0, False), ("pxt_view_500_truncate", truncate, 0, False)]
    assert [[(r.name, r.isNew) for r in t.transitionRels or ()] for t in base_trigs] == [
        [("pxt_new", True)], [("pxt_old", False)], [("pxt_old", False)], []]
    assert all((t.relation.schemaname, t.relation.relname) == BASE for t in base_trigs)
    assert all(names(t.funcname) == ["pxt_internal", "view_500"] for t in base_trigs)
    # the storage refuses other writers: statements that insert or delete, updates row by row
    assert (guard_stmt.events, guard_stmt.timing, guard_stmt.row) == (insert | delete, 2, False)
    assert (guard_row.events, guard_row.timing, guard_row.row) == (update, 2, True)
    assert {(t.relation.schemaname, t.relation.relname) for t in (guard_stmt, guard_row)} == {STORE}


def test_bodies_keep_their_line_numbers():
    """Line 1 of each body is empty, as it always was, so plpgsql's error contexts ("line 27
    at RAISE") did not move when the bodies moved into the template."""
    bodies = [body_of(parse(s)) for s in maintenance() if "LANGUAGE plpgsql" in s.as_string()]
    assert [b.split("\n")[:2] for b in bodies] == [["", "DECLARE"], ["", "DECLARE"], ["", "BEGIN"]]


def test_expand_writes_the_storage_from_the_iterator_view_only():
    fn_sql = maintenance()[0].as_string()
    stmts = body_statements(fn_sql)
    dml = [s for s in stmts if isinstance(s, (pg.InsertStmt, pg.DeleteStmt))]
    delete, insert = dml
    assert (delete.relation.schemaname, delete.relation.relname, delete.relation.inh) == (*STORE, False)
    assert (insert.relation.schemaname, insert.relation.relname) == STORE
    assert [c.name for c in insert.cols] == ["_pxt_base_rowid", "pos", EVIL, UNI]
    assert column_refs(insert.selectStmt.targetList) == [("v", "_pxt_base_rowid"), ("v", "pos"), ("v", EVIL), ("v", UNI)]
    assert ranges(insert.selectStmt) == [("pxt_internal", "iter_500")]
    # every relation the body names is the storage, the iterator view or the base
    assert set(ranges(tuple(stmts))) == {STORE, ("pxt_internal", "iter_500"), BASE}


def test_expand_names_the_failing_row_by_the_columns_the_iterator_reads():
    fn_sql = maintenance()[0].as_string()
    [select] = [s for s in body_statements(fn_sql) if isinstance(s, pg.SelectStmt) and s.intoClause is None
                and ranges(s) == [BASE]]
    refs = column_refs(select.targetList)
    assert refs == [("b", "_pxt_rowid"), ("b", EVIL), ("b", MIXED)]
    assert {EVIL + "=", MIXED + "=", "_pxt_rowid="} <= set(strings(select.targetList))


def test_messages_stay_string_constants():
    """The view's name, the call and the base's name reach the bodies only inside string
    constants: a call text with a quote, a semicolon and a comment changes no statement."""
    benign = it.maintenance(500, "ml.v", "pxt.f(x)", STORE, 'ml."x_rows"', BASE, "b", ITER, ["pos"], [EVIL], True)
    for s, b in zip(maintenance(columns=["pos"], reads=[EVIL]), benign):
        text = s.as_string()
        if "LANGUAGE plpgsql" not in text:
            continue
        hostile, plain = parsed_queries(text), parsed_queries(b.as_string())
        assert [type(q).__name__ for q in hostile] == [type(q).__name__ for q in plain]
        assert not any(isinstance(n, pg.DropStmt) for n in walk(tuple(hostile)))
        for q in hostile:  # wherever the call's text is, it is inside one string constant
            assert ("DROP TABLE t" in str(q)) == any("DROP TABLE t" in c for c in strings(q))
    guard = maintenance()[7].as_string()
    consts = [c for q in plpgsql_queries(guard) for c in strings(parse_sql("SELECT " + q))]
    message = ("ml." + EVIL + " is an iterator view: its rows come from \"My Schema\".\"Mixed Case\" through "
               + CALL_TEXT + "; write the base table instead")
    assert message in consts and 'ml."x_rows"' in consts


def test_trigger_reexpands_only_rows_whose_read_columns_changed():
    fn_sql = maintenance()[2].as_string()
    [cond] = [q for q in plpgsql_queries(fn_sql) if "IS DISTINCT FROM" in q and "pxt_old" in q]
    where = parse(cond).whereClause
    assert column_refs(where) == [("o", EVIL), ("b", EVIL), ("o", MIXED), ("b", MIXED)]
    [expand] = [f for q in parsed_queries(fn_sql) for f in walk(q) if isinstance(f, pg.FuncCall)
                and "view_expand_500" in names(f.funcname)]
    assert names(expand.funcname) == ["pxt_internal", "view_expand_500"] and column_refs(expand) == [("pxt_ids",)]
    # an iterator that reads no column: an update never re-expands
    fn_sql = maintenance(reads=())[2].as_string()
    [cond] = [q for q in plpgsql_queries(fn_sql) if "pxt_old o JOIN" in q]
    assert isinstance(parse(cond).whereClause, pg.A_Const) and parse(cond).whereClause.val.boolval is False


def test_guard_lets_only_the_view_functions_write_and_keeps_iterator_columns():
    fn_sql = maintenance()[7].as_string()
    [moved] = [q for q in plpgsql_queries(fn_sql) if "NEW." in q and "IS DISTINCT FROM" in q]
    refs = column_refs(parse("SELECT " + moved))
    assert refs == [(side, c) for c in ("_pxt_base_rowid", "pos", EVIL, UNI) for side in ("new", "old")]
    assert "500" in [c for q in plpgsql_queries(fn_sql) for c in strings(parse_sql("SELECT " + q))]


def test_trusted_iterators_mark_their_writes():
    """pxt_iter.trusted names the storage while a pixelgres iterator's rows are written, and is
    cleared after (on success and on error alike)."""
    def trusted_values(trusted):
        calls = [f for q in parsed_queries(maintenance(trusted=trusted)[0].as_string()) for f in walk(q)
                 if isinstance(f, pg.FuncCall) and names(f.funcname) == ["set_config"]]
        return [f.args[1].val.sval for f in calls if f.args[0].val.sval == "pxt_iter.trusted"]
    assert trusted_values(True) == ["500", "", ""] and trusted_values(False) == ["", "", ""]


def test_expand_without_columns():
    fn_sql = maintenance(columns=(), reads=())[0].as_string()
    [insert] = [s for s in body_statements(fn_sql) if isinstance(s, pg.InsertStmt)]
    assert [c.name for c in insert.cols] == ["_pxt_base_rowid"]


# --- iterator views: the joined view, expanding, dropping ----------------------------------------
def test_joined_view_joins_the_base_on_the_base_row():
    select = it.joined_view_select(STORE, BASE, [("s", "pos"), ("s", EVIL), ("b", MIXED), ("s", "_pxt_rowid")])
    view = parse(it.create_joined_view(("ml", EVIL), select))
    assert view.replace and (view.view.schemaname, view.view.relname) == ("ml", EVIL)
    q = view.query
    assert [t.name for t in q.targetList] == ["pos", EVIL, MIXED, "_pxt_rowid"]
    assert column_refs(q.targetList) == [("s", "pos"), ("s", EVIL), ("b", MIXED), ("s", "_pxt_rowid")]
    join = q.fromClause[0]
    assert join.jointype.name == "JOIN_LEFT"
    assert (join.larg.relname, join.larg.alias.aliasname, join.larg.inh) == (STORE[1], "s", False)
    assert (join.rarg.relname, join.rarg.alias.aliasname, join.rarg.inh) == (BASE[1], "b", False)
    assert column_refs(join.quals) == [("b", "_pxt_rowid"), ("s", "_pxt_base_rowid")]
    with pytest.raises(ValueError):
        it.joined_view_select(STORE, BASE, [("x", "pos")])


def test_expanding_existing_rows():
    assert parse(it.count_rows(BASE)).fromClause[0].inh is False
    call = parse(it.expand_rows(500)).targetList[0].val
    assert names(call.funcname) == ["pxt_internal", "view_expand_500"] and isinstance(call.args[0], pg.ParamRef)
    ids = parse(it.row_ids(BASE))
    assert ranges(ids) == [BASE] and column_refs(ids.sortClause) == [("_pxt_rowid",)]


def test_drop_statements():
    stmts = [parse(s) for s in it.drop_functions(500)]
    assert [names(s.objects[0].objname) for s in stmts[:3]] == [
        ["pxt_internal", "view_500"], ["pxt_internal", "view_guard_500"], ["pxt_internal", "view_expand_500"]]
    assert all(s.missing_ok and s.behavior.name == "DROP_CASCADE" for s in stmts[:3])
    assert [len(s.objects[0].objargs or ()) for s in stmts[:3]] == [0, 0, 1]
    assert stmts[3].missing_ok and names(stmts[3].objects[0]) == ["pxt_internal", "iter_500"]
    drop = parse(it.drop_table_cascade(written_name('ml."a""b"')))
    assert names(drop.objects[0]) == ["ml", 'a"b'] and drop.behavior.name == "DROP_CASCADE"
    assert not parse(it.drop_view(STORE)).missing_ok and parse(it.drop_view(STORE, if_exists=True)).missing_ok


def test_comments_and_hints_are_literals():
    comment = parse(it.comment_on_view(("ml", EVIL), "it's a \\ comment"))
    assert comment.comment == "it's a \\ comment" and names(comment.object) == ["ml", EVIL]
    hint = it.refresh_hint('ml."a\'b"')
    assert parse(hint).targetList[0].val.args[0].val.sval == 'ml."a\'b"'
    assert parse(it.grant_reader(("ml", EVIL))).objects[0].relname == EVIL


# --- embedding indexes ---------------------------------------------------------------------------
VS = Identifier("My Ext")
CALL = emb.Call("pxt.sentence_transformer", "model => 'all-MiniLM-L6-v2'")
BARE = emb.Call("pxt.e5_small", "")


def fcall(sql):
    return [n for n in walk(parse(sql)) if isinstance(n, pg.FuncCall)]


def test_call_takes_its_input_first():
    [f] = fcall(SQL("SELECT {}").format(CALL.with_input(Identifier(EVIL))))
    assert names(f.funcname) == ["pxt", "sentence_transformer"]
    assert column_refs(f.args[0]) == [(EVIL,)] and f.args[1].name == "model"
    [f] = fcall(SQL("SELECT {}").format(BARE.with_input(emb.parameter("character varying(20)"))))
    assert len(f.args) == 1 and isinstance(f.args[0], pg.TypeCast) and isinstance(f.args[0].arg, pg.ParamRef)
    with pytest.raises(ValueError):
        emb.parameter("text); DROP TABLE t; --")


def test_query_form_adds_kind_query():
    assert BARE.query_form() == "pxt.e5_small(kind => 'query')"
    [f] = fcall("SELECT " + CALL.query_form())
    assert [a.name for a in f.args] == ["model", "kind"] and f.args[1].arg.val.sval == "query"


def test_column_expression_casts_to_the_qualified_vector_type():
    text = emb.column_expression(CALL, UNI, VS, "halfvec", 384)
    cast = parse("SELECT " + text).targetList[0].val
    assert names(cast.typeName.names) == ["My Ext", "halfvec"]
    assert [n.val.ival for n in cast.typeName.typmods] == [384]
    assert column_refs(cast.arg) == [(UNI,)]
    with pytest.raises(TypeError):
        emb.column_expression(CALL, UNI, VS, "vector", 384.0)
    with pytest.raises(ValueError):
        emb.column_expression(CALL, UNI, VS, "sparsevec", 384)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
@pytest.mark.parametrize("vtype", ["vector", "halfvec"])
def test_hnsw_index(metric, vtype):
    idx = parse(emb.create_index("t_" + MIXED + "_hnsw", ("ml", EVIL), MIXED, VS, vtype, metric, 16, 64))
    assert idx.idxname == "t_Mixed Case_hnsw" and idx.accessMethod == "hnsw"
    assert (idx.relation.schemaname, idx.relation.relname) == ("ml", EVIL)
    [p] = idx.indexParams
    assert p.name == MIXED and names(p.opclass) == ["My Ext", f"{vtype}_{metric}_ops"]
    assert {o.defname: o.arg.ival for o in idx.options} == {"m": 16, "ef_construction": 64}


def test_hnsw_index_refuses_unknown_metrics_and_sizes():
    with pytest.raises(ValueError):
        emb.create_index("i", ("ml", "t"), "v", VS, "vector", "dot", 16, 64)
    for bad in ("16", 16.0, -1, True):
        with pytest.raises(TypeError):
            emb.create_index("i", ("ml", "t"), "v", VS, "vector", "cosine", bad, 64)


def op_exprs(node):
    return [n for n in walk(node) if isinstance(n, pg.A_Expr) and len(n.name) == 2]


@pytest.mark.parametrize("metric,op", [("cosine", "<=>"), ("ip", "<#>"), ("l2", "<->")])
def test_search_orders_by_the_schema_qualified_operator(metric, op):
    flt = emb.filter_condition('"Num Col" > 3 AND body <> \'x\'')
    q = parse(emb.search(("ml", EVIL), UNI, VS, metric, "halfvec", flt))
    ops = op_exprs(q)
    assert ops and all(names(o.name) == ["My Ext", op] for o in ops)
    # the vector column against $1 cast to the index's type, in the distance and the ORDER BY
    for o in ops:
        assert column_refs(o.lexpr) == [("pxt_row", UNI)]
        assert names(o.rexpr.typeName.names) == ["My Ext", "halfvec"] and o.rexpr.arg.number == 1
    assert set(ranges(q)) == {("ml", EVIL), (None, "hits")}
    assert ("Num Col",) in column_refs(q) and "x" in strings(q)  # the filter, inside the CTE
    assert emb.filter_condition(None).as_string() == emb.filter_condition("  ").as_string() == ""


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_score_of_a_distance(metric):
    q = parse(emb.search(("ml", "t"), "v", VS, metric, "vector", emb.filter_condition(None)))
    [score] = [t.val for t in q.targetList if t.name == "score"]
    dist = column_refs(score)
    assert dist == [("h", "distance")]
    # cosine: 1 - d; ip: -(d); l2: 1 / (1 + d)
    shape = {"cosine": ("-", pg.A_Const), "ip": ("-", type(None)), "l2": ("/", pg.A_Const)}[metric]
    assert (names(score.name)[0], type(score.lexpr)) == shape


def test_hybrid_search_ranks_the_text_with_the_configuration():
    q = parse(emb.hybrid_search(("ml", EVIL), "vec", EVIL, VS, "cosine", "vector", 'public."My Cfg"',
                                emb.filter_condition("body IS NOT NULL")))
    tsv = [f for f in walk(q) if isinstance(f, pg.FuncCall) and names(f.funcname) == ["to_tsvector"]]
    assert len(tsv) == 2 and all(column_refs(f.args[1]) == [("pxt_row", EVIL)] for f in tsv)
    assert all(f.args[0].arg.val.sval == 'public."My Cfg"' for f in tsv)
    assert all(names(o.name) == ["My Ext", "<=>"] for o in op_exprs(q))
    assert sorted(p.number for p in walk(q) if isinstance(p, pg.ParamRef)) == [1, 1, 2, 3, 3, 4, 4, 5, 6]


def test_catalog_queries_are_single_statements():
    for q in (emb.INDEX_COLUMN, emb.INDEX_NAMES, emb.RESOLVE, emb.RESOLVE_BY_NAME, emb.LIST_INDEXES):
        stmt = parse(q)
        assert ("pxt", "embedding_indexes") in ranges(stmt)
    assert parse(emb.load_pgvector(VS)).targetList[0].val.funcname[0].sval == "My Ext"
    hint = emb.add_index_hint('ml."a\'b"', EVIL)
    assert [a.val.sval for a in parse(hint).targetList[0].val.args] == ['ml."a\'b"', EVIL]


def test_generators_compose_only_composables():
    """A value never enters the SQL as text: a Literal reads back as the same value."""
    q = parse(SQL("SELECT {}").format(Literal(EVIL)))
    assert strings(q) == [EVIL]
