"""Reading generated SQL back with PostgreSQL's own parser (pglast), for the sqlgen tests."""
from pglast import ast as pg
from pglast import parse_sql


def one_statement(sql):
    """The single statement ``sql`` parses to (more than one would be an injection)."""
    text = sql.as_string() if hasattr(sql, "as_string") else sql
    stmts = parse_sql(text)
    assert len(stmts) == 1, text
    return stmts[0].stmt


def walk(node):
    """Every pglast node under ``node``."""
    if isinstance(node, tuple):
        for n in node:
            yield from walk(n)
    elif isinstance(node, pg.Node):
        yield node
        for attr in node:
            yield from walk(getattr(node, attr))


def names(nodes):
    return [n.sval for n in nodes]


def column_refs(node):
    return [tuple(f.sval for f in n.fields if isinstance(f, pg.String)) for n in walk(node) if isinstance(n, pg.ColumnRef)]


def int_constants(node):
    return [n.val.ival for n in walk(node) if isinstance(n, pg.A_Const) and isinstance(n.val, pg.Integer)]


def strings(node):
    return [n.val.sval for n in walk(node) if isinstance(n, pg.A_Const) and isinstance(n.val, pg.String)]
