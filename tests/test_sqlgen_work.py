"""pixelgres.server.sqlgen.work without a database: the work queue's claim, collect and
write-back statements, read back with libpg_query (pglast), hostile names included."""
import pytest
from pglast import ast as pg

from pixelgres.server.sqlgen import ddl as gen
from pixelgres.server.sqlgen import work
from pixelgres.server.sqlgen.compose import Identifier
from sqlast import column_refs, one_statement, strings, walk

EVIL = 'a"b\'); DROP TABLE x; --'
PARTS = ("pxt_data", "ml." + EVIL)
TABLE = Identifier(*PARTS)


@pytest.mark.parametrize("col", ["emb", EVIL, "Mixed Case"])
def test_claim_candidates_is_one_locking_select_over_pending_cells(col):
    stmt = one_statement(work.claim_candidates(TABLE, col, ["dep", EVIL + "2"]))
    assert isinstance(stmt, pg.SelectStmt)
    assert (stmt.fromClause[0].schemaname, stmt.fromClause[0].relname) == PARTS and not stmt.fromClause[0].inh
    lock = stmt.lockingClause[0]
    assert lock.strength.name == "LCS_FORUPDATE" and lock.waitPolicy.name == "LockWaitSkip"
    refs = column_refs(stmt)
    assert ("s", col) in refs and ("s", "dep") in refs and ("s", EVIL + "2") in refs
    assert col in strings(stmt)  # the error key, a literal
    assert [p.number for p in walk(stmt) if isinstance(p, pg.ParamRef)] == [1, 2, 3]


def test_collect_evaluates_the_expression_over_the_claimed_rows():
    stmt = one_statement(work.collect_calls(TABLE, gen.Deparsed("pxt_test.batch_probe(pxt_row.s)")))
    calls = [tuple(s.sval for s in n.funcname) for n in walk(stmt) if isinstance(n, pg.FuncCall)]
    assert ("pxt_test", "batch_probe") in calls and ("pg_catalog", "count") in calls
    assert ("pxt_row", "_pxt_rowid") in column_refs(stmt)


@pytest.mark.parametrize("col", ["emb", EVIL])
def test_write_back_updates_only_unchanged_pending_rows(col):
    stmt = one_statement(work.write_back(TABLE, col))
    assert isinstance(stmt, pg.UpdateStmt) and not stmt.relation.inh
    assert [t.name for t in stmt.targetList] == [col]
    refs = column_refs(stmt.whereClause)
    assert ("s", "xmin") in refs and ("u", "x") in refs and ("s", col) in refs
    assert [column_refs(t) for t in stmt.returningList] == [[("s", "_pxt_rowid")]]


def test_text_is_neither_a_table_nor_an_expression():
    with pytest.raises(TypeError):
        work.collect_calls(TABLE, "pxt_row.s; DROP TABLE x")
    with pytest.raises(TypeError):
        work.write_back("pxt_data.t; DROP TABLE x", "c")
