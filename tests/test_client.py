"""The Python wrapper (``import pixelgres as pxt``): behaviour in the database, not SQL text.

Dialect tests check that every operator and JSON path the wrapper emits round-trips through
the pgvector-aware sqlglot dialect (generate, parse back, same AST).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import psycopg
import pytest
import sqlglot
from PIL import Image

import pixelgres as pxt
from pixelgres.client import types as T
from pixelgres.client.dialect import CosineDistance, NegInnerProduct, parse, to_sql
from pixelgres.client.exprs import ColumnRef, Ctx, func, literal
from pixelgres.functions import count, max as pmax, mean, sum as psum

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def px(dsn):
    """pxt initialised on a fresh database; closed afterwards."""
    s = pxt.init(dsn)
    yield s
    s.close()


def photo(path, i=0, size=(64, 48), fmt=None):
    rng = np.random.default_rng(i)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return str(path)


@pytest.fixture
def private_dir():
    """A directory only root (this test process) can read: the server (OS user postgres) cannot."""
    d = tempfile.mkdtemp(prefix="pxt-private-")
    os.chmod(d, 0o700)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


# --- packaging -----------------------------------------------------------------------------------
def test_import_is_lazy_for_the_server():
    code = ("import sys, pixelgres, pixelgres.server; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('psycopg', 'sqlglot', 'pandas', 'torch')]; "
            "assert not bad, bad; assert pixelgres.__version__; print('ok')")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
    assert pxt.Image is T.Image and callable(pxt.create_table)


# --- the dialect -----------------------------------------------------------------------------------
class _FakeTable:
    _path = '"ml"."t"'


def _cols():
    t = _FakeTable()
    return (ColumnRef(t, "a", T.Int), ColumnRef(t, "b", T.Float), ColumnRef(t, "s", T.String),
            ColumnRef(t, "j", T.Json), ColumnRef(t, "ok", T.Bool))


def _roundtrip(node):
    sql = to_sql(node)
    back = parse(sql)
    assert back == node, f"{sql}\n{back!r}\n!=\n{node!r}"
    assert to_sql(back) == sql
    return sql


def _operator_exprs():
    a, b, s, j, ok = _cols()
    return {
        "add": a + 1, "radd": 1 + a, "sub": a - b, "rsub": 2.5 - b, "mul": a * b, "div": b / 2, "int div": a / a,
        "mod": a % 3, "floordiv": a // 2, "neg": -a, "neg literal": a + -3, "concat": s + "x",
        "eq": a == 1, "ne": a != 1, "lt": a < 1, "le": a <= 1, "gt": b > 0.5, "ge": b >= 0.5,
        "is null": a == None, "is not null": a != None,  # noqa: E711 - Pixeltable's spelling
        "and": (a > 1) & (b < 2), "or": (a > 1) | ok, "not": ~ok, "nested": ~((a + 1) * 2 >= b),
        "isin": a.isin([1, 2, 3]), "isin strings": s.isin(["x", "it's"]), "cast": a.astype(pxt.Float),
        "json key": j.choices, "json path": j.choices[0].message.content, "json subscript": j["key"],
        "json negative index": j["list"][-1], "json odd keys": j["it's"]["a b"]["0"]["é"]["a.b"],
        "json as text": j.response.text.astype(pxt.String), "json as int": j.n.astype(pxt.Int),
        "json compared to int": j.usage.total_tokens > 10, "json compared to str": j.kind == "dog",
        "json isin": j.kind.isin(["a", "b"]), "json arithmetic": j.n + 1,
        "string literal escapes": s == "it's \\ 'quoted' %s",
    }


@pytest.mark.parametrize("name", list(_operator_exprs()))
def test_every_operator_and_json_path_round_trips(name):
    e = _operator_exprs()[name]
    _roundtrip(e.ast(Ctx()))


@pytest.mark.parametrize("cls,op", [(CosineDistance, "<=>"), (NegInnerProduct, "<#>"),
                                    (sqlglot.exp.Distance, "<->")])
def test_pgvector_operators_round_trip(cls, op):
    emb = sqlglot.exp.Column(this=sqlglot.exp.Identifier(this="caption_embedding", quoted=True))
    q = func("embed", [literal("ml.images"), literal("caption"), literal("a dog")])
    node = cls(this=emb, expression=q)
    sql = _roundtrip(node)
    assert f" {op} " in sql
    # in a query shaped as similarity search uses it
    sel = sqlglot.exp.select(sqlglot.exp.Sub(this=literal(1), expression=sqlglot.exp.Paren(this=node.copy()))) \
        .from_(sqlglot.exp.Table(this=sqlglot.exp.Identifier(this="t", quoted=True)))
    sel.set("order", sqlglot.exp.Order(expressions=[sqlglot.exp.Ordered(this=node.copy(), desc=False, nulls_first=False)]))
    sel.set("limit", sqlglot.exp.Limit(expression=literal(5)))
    _roundtrip(sel)
    # stock sqlglot would not keep it
    stock = sqlglot.parse_one(f"SELECT a {op} b", read="postgres").sql("postgres") if op != "<#>" else None
    if op == "<=>":
        assert "IS NOT DISTINCT FROM" in stock
    if op == "<#>":
        with pytest.raises(sqlglot.errors.ParseError):
            sqlglot.parse_one("SELECT a <#> b", read="postgres")


def test_pgvector_operators_evaluate_in_db(db):
    x, y = [0.3, -1.0, 2.0], [1.5, 0.5, -0.25]
    ops = {}
    for name, cls in (("cos", CosineDistance), ("ip", NegInnerProduct), ("l2", sqlglot.exp.Distance)):
        node = cls(this=sqlglot.exp.Cast(this=literal(str(x)), to=sqlglot.exp.DataType.build("vector", udt=True)),
                   expression=sqlglot.exp.Cast(this=literal(str(y)), to=sqlglot.exp.DataType.build("vector", udt=True)))
        ops[name] = db.execute(to_sql(sqlglot.exp.select(node))).fetchone()[0]
    xa, ya = np.array(x), np.array(y)
    assert ops["cos"] == pytest.approx(1 - xa @ ya / np.linalg.norm(xa) / np.linalg.norm(ya), rel=1e-5)
    assert ops["ip"] == pytest.approx(-(xa @ ya), rel=1e-5)
    assert ops["l2"] == pytest.approx(np.linalg.norm(xa - ya), rel=1e-5)


# --- init, settings --------------------------------------------------------------------------------
def test_init_forwards_openai_settings_as_session_settings(dsn, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret value\\x")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    s = pxt.init(dsn)
    try:
        got = s.fetchone("SELECT current_setting('pixelgres.openai_api_key'), current_setting('pixelgres.openai_base_url')")
        assert got == ("sk-test-secret value\\x", "http://127.0.0.1:9/v1")
        # never sent as a statement: not in pg_stat_activity, nor in any table
        acts = s.fetchall("SELECT query FROM pg_stat_activity WHERE datname = current_database()")
        assert not any("sk-test-secret" in (q or "") for (q,) in acts)
        t = pxt.create_table("k", {"x": pxt.Int})
        t.insert([{"x": 1}])
        dump = s.fetchall("SELECT to_jsonb(c)::text FROM pxt.column_defs c UNION ALL SELECT to_jsonb(t)::text FROM k t")
        assert not any("sk-test-secret" in r[0] for r in dump)
    finally:
        s.close()


def test_init_creates_the_extension_when_missing(server):
    name = "t_noext_" + os.urandom(4).hex()
    with server.admin() as c:
        c.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    try:
        s = pxt.init(server.dsn(name))
        assert s.fetchone("SELECT extversion FROM pg_extension WHERE extname = 'pixelgres'")[0] == pxt.__version__
        s.close()
    finally:
        server.drop_database(name)


def test_init_uses_pixelgres_dsn(dsn, monkeypatch):
    monkeypatch.setenv("PIXELGRES_DSN", dsn)
    s = pxt.init()
    try:
        assert s.fetchone("SELECT current_database()")[0] == psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    finally:
        s.close()


# --- catalog -----------------------------------------------------------------------------------------
def test_dirs_tables_list_get_drop(px):
    pxt.create_dir("ml")
    with pytest.raises(pxt.Error, match="already exists"):
        pxt.create_dir("ml")
    pxt.create_dir("ml", if_exists="ignore")
    t = pxt.create_table("ml.things", {"name": pxt.String, "n": int, "meta": pxt.Json, "when": pxt.Timestamp,
                                       "pic": pxt.Image, "v": "vector(3)"})
    top = pxt.create_table("top", {"x": pxt.Int})
    assert pxt.list_tables() == ["top", "ml.things"] or set(pxt.list_tables()) == {"top", "ml.things"}
    assert pxt.list_tables("ml") == ["ml.things"]
    assert "ml" in pxt.list_dirs()
    g = pxt.get_table("ml.things")
    assert g.columns() == t.columns() and {c: g[c].col_type for c in ("name", "n", "meta", "when", "pic")} == \
        {"name": pxt.String, "n": pxt.Int, "meta": pxt.Json, "when": pxt.Timestamp, "pic": pxt.Image}
    assert g.v.col_type.pg == "vector(3)"
    with pytest.raises(pxt.Error, match="already exists"):
        pxt.create_table("ml.things", {"x": pxt.Int})
    assert pxt.create_table("ml.things", {"x": pxt.Int}, if_exists="ignore").columns() == t.columns()
    assert pxt.create_table("ml.things", {"x": pxt.Int}, if_exists="replace").columns() == ["x"]
    with pytest.raises(pxt.Error, match="does not exist"):
        pxt.get_table("ml.nope")
    with pytest.raises(pxt.Error, match="nested"):
        pxt.create_table("a.b.c", {"x": pxt.Int})
    with pytest.raises(pxt.Error, match="not empty"):
        pxt.drop_dir("ml")
    pxt.drop_table(top)
    pxt.drop_table("top", if_not_exists="ignore")
    pxt.drop_dir("ml", force=True)
    assert pxt.list_tables() == [] and "ml" not in pxt.list_dirs()


# --- insert ------------------------------------------------------------------------------------------
def test_insert_sources_and_counts(px, tmp_path):
    import pandas as pd

    t = pxt.create_table("src", {"name": pxt.String, "n": pxt.Int, "score": pxt.Float, "meta": pxt.Json})
    st = t.insert([{"name": "a", "n": 1, "score": 0.5, "meta": {"k": [1, 2]}}, {"name": "b", "n": 2}])
    assert (st.num_rows, st.num_excs) == (2, 0) and "Inserted 2 rows with 0 errors" in str(st)
    t.insert(name="c", n=3, meta="just a string")
    df = pd.DataFrame({"name": ["d", "e"], "n": [4, 5], "score": [1.5, float("nan")]})
    assert t.insert(df).num_rows == 2
    csv = tmp_path / "rows.csv"
    pd.DataFrame({"name": ["f", "g"], "n": [6, 7]}).to_csv(csv, index=False)
    assert t.insert(str(csv)).num_rows == 2
    try:
        import pyarrow  # noqa: F401

        pq = tmp_path / "rows.parquet"
        pd.DataFrame({"name": ["h"], "n": [8]}).to_parquet(pq)
        assert t.insert(pq).num_rows == 1
        expected = 8
    except ImportError:
        expected = 7
    rows = {r["name"]: r for r in t.collect()}
    assert len(rows) == expected
    assert rows["a"]["meta"] == {"k": [1, 2]} and rows["c"]["meta"] == "just a string"
    assert rows["e"]["score"] is None and rows["d"]["score"] == 1.5 and rows["g"]["n"] == 7
    with pytest.raises(pxt.Error, match="no column 'bogus'") as e:
        t.insert([{"name": "x"}, {"bogus": 1}])
    assert e.value.input_row == 1
    assert t.count() == expected  # nothing of the failed insert landed


def test_insert_error_names_column_and_input_row(px):
    t = pxt.create_table("e", {"x": pxt.Int})
    t.add_computed_column(inv=100 // (t.x - 3))
    with pytest.raises(pxt.Error) as e:
        t.insert([{"x": i} for i in range(10)])
    err = e.value
    assert err.column == "inv" and err.input_row == 3 and err.rowid is not None and "division by zero" in str(err)
    assert err.sqlstate == "22012" and t.count() == 0
    t.add_computed_column(safe=100 // (t.x - 5), on_error="ignore")
    with pytest.raises(pxt.Error):
        t.insert([{"x": 3}])
    t.drop_column("inv")
    st = t.insert([{"x": i} for i in range(10)])
    assert (st.num_rows, st.num_excs, st.cols_with_excs, st.errors_by_column) == (10, 1, ["safe"], {"safe": 1})
    errs = list(t.errors())
    assert len(errs) == 1 and errs[0]["column"] == "safe" and "division by zero" in errs[0]["message"]


def test_insert_uploads_what_the_server_cannot_read(px, files, private_dir, monkeypatch):
    from pixelgres.client.media import MediaBatch
    from pixelgres.client.session import Session

    t = pxt.create_table("pics", {"image": pxt.Image, "tag": pxt.String})
    t.add_computed_column(w=t.image.width)
    readable = [photo(files / f"r{i}.png", i) for i in range(3)]
    private = [photo(private_dir / f"p{i}.jpg", 10 + i, size=(40 + i, 30)) for i in range(20)]
    dup = private_dir / "copy.jpg"
    shutil.copy(private[0], dup)
    calls = {"readable": 0, "copy": 0}
    orig_r, orig_c = Session.server_readable, MediaBatch._copy
    monkeypatch.setattr(Session, "server_readable",
                        lambda self, *a, **k: (calls.__setitem__("readable", calls["readable"] + 1), orig_r(self, *a, **k))[1])
    monkeypatch.setattr(MediaBatch, "_copy",
                        lambda self, *a, **k: (calls.__setitem__("copy", calls["copy"] + 1), orig_c(self, *a, **k))[1])
    rows = [{"image": p, "tag": "readable"} for p in readable] + \
        [{"image": p, "tag": "private"} for p in private] + [{"image": str(dup), "tag": "dup"}]
    st = t.insert(rows)
    assert st.num_rows == 24 and st.num_excs == 0
    assert st.uploaded_files == 20  # the duplicate is stored once
    assert calls == {"readable": 2, "copy": 1}  # per batch, not per file
    assert sorted(t.where(t.tag == "readable").select(t.image).collect()["image"]) == readable  # passed through
    stored = [r["image"] for r in t.where(t.tag == "private").select(t.image).collect()]
    assert all(v.startswith("media://") for v in stored) and len(set(stored)) == 20
    ref = t.where((t.w == 40) & (t.tag == "private")).select(t.image).collect()["image"][0]
    assert t.where(t.tag == "dup").select(t.image).collect()["image"] == [ref]  # same content, same reference
    # the stored bytes are the file's bytes
    assert bytes(px.fetchone("SELECT pxt.to_bytes(%s::pxt.image)", (ref,))[0]) == Path(private[0]).read_bytes()
    # a second insert of the same files uploads nothing (deduplicated by content hash)
    assert t.insert([{"image": p, "tag": "again"} for p in private[:5]]).uploaded_files == 0
    # relative paths are relative to the working directory; file:// URIs work; PIL images and bytes upload
    monkeypatch.chdir(private_dir)
    im = Image.open(private[1])
    st = t.insert([{"image": "p2.jpg", "tag": "rel"}, {"image": Path(private[3]).as_uri(), "tag": "uri"},
                   {"image": im, "tag": "pil"}, {"image": Path(private[4]).read_bytes(), "tag": "bytes"}])
    assert st.num_rows == 4
    ws = {r["tag"]: r["w"] for r in t.where(t.tag.isin(["rel", "uri", "pil", "bytes"])).select(t.tag, t.w).collect()}
    assert ws == {"rel": 42, "uri": 43, "pil": 41, "bytes": 44}
    with pytest.raises(pxt.Error, match="readable neither") as e:
        t.insert([{"image": str(private_dir / "missing.jpg")}])
    assert "row 0" in str(e.value)


def test_insert_passes_urls_through(px, files, server):
    import http.server
    import threading

    photo(files / "u.png", 3, size=(33, 22))
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(files), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        dbname = px.fetchone("SELECT current_database()")[0]
        with server.admin() as c:
            c.execute(psycopg.sql.SQL("ALTER DATABASE {} SET pixelgres.allowed_url_hosts = '127.0.0.1'").format(
                psycopg.sql.Identifier(dbname)))
        s2 = pxt.init(px.dsn)  # the database setting applies to new sessions
        t = pxt.create_table("urls", {"image": pxt.Image})
        url = f"http://127.0.0.1:{httpd.server_address[1]}/u.png"
        st = t.insert([{"image": url}])
        assert st.uploaded_files == 0
        assert t.select(t.image, t.image.width).collect().rows == [(url, 33)]
        s2.close()
    finally:
        httpd.shutdown()


def test_invalid_media_names_column_and_row(px, files):
    t = pxt.create_table("bad", {"image": pxt.Image})
    good = photo(files / "g.png")
    (files / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(pxt.Error) as e:
        t.insert([{"image": good}, {"image": good}, {"image": str(files / "broken.png")}])
    assert e.value.column == "image" and e.value.input_row == 2 and "image" in e.value.message


# --- expressions and queries ----------------------------------------------------------------------------
@pytest.fixture
def nums(px):
    t = pxt.create_table("nums", {"n": pxt.Int, "f": pxt.Float, "s": pxt.String, "j": pxt.Json, "ok": pxt.Bool})
    t.insert([{"n": i, "f": i / 4, "s": f"Item {i}", "ok": i % 2 == 0,
               "j": {"choices": [{"message": {"content": f"text {i}"}}], "usage": {"total_tokens": i * 10},
                     "tags": ["a", "b", str(i)], "it's": i}} for i in range(10)] + [{"n": None, "s": None}])
    return t


def test_expressions_evaluate_in_the_database(nums):
    t = nums
    q = t.where(t.n == 7).select(
        t.n + 1, t.n - 0.5, t.n * 2, t.n / 2, t.n % 4, t.n // 2, -t.n, t.s + "!", t.s.upper(), t.s.lower(),
        t.s.len(), t.s.contains("tem 7"), t.s.startswith("Item"), t.s.endswith("7"), t.s.replace("Item", "I"),
        t.j.choices[0].message.content, t.j["usage"]["total_tokens"], t.j.tags[-1], t.j["it's"],
        t.j.usage.total_tokens.astype(pxt.Int) + 1, t.f.astype(pxt.String), t.ok, ~t.ok)
    row = list(q.collect()[0].values())
    assert row == [8, 6.5, 14, 3.5, 3, 3, -7, "Item 7!", "ITEM 7", "item 7", 6, True, True, True, "I 7",
                   "text 7", 70, "7", 7, 71, "1.75", False, True]


def test_where_order_limit_isin_null_and_json_comparisons(nums):
    t = nums
    assert [r["n"] for r in t.where((t.n > 2) & (t.n <= 5)).order_by(t.n, asc=False).select(t.n).collect()] == [5, 4, 3]
    assert [r["n"] for r in t.where(t.n.isin([1, 3, 99]) | (t.n == 8)).order_by(t.n).select(t.n).collect()] == [1, 3, 8]
    assert t.where(t.n == None).count() == 1 and t.where(t.n != None).count() == 10  # noqa: E711
    assert t.where(t.j.usage.total_tokens >= 50).count() == 5
    assert t.where(t.j.choices[0].message.content == "text 3").select(t.n).collect()["n"] == [3]
    assert t.where(t.j.tags[2].isin(["1", "2"])).count() == 2
    assert t.where(t.s.contains("100%")).count() == 0  # '%' in a literal is data, not a placeholder
    assert t.order_by(t.n).limit(3).select(t.n).collect()["n"] == [0, 1, 2]
    assert t.order_by(t.n).limit(3, offset=2).select(t.n).collect()["n"] == [2, 3, 4]
    assert t.limit(4).count() == 4 and t.count() == 11
    with pytest.raises(TypeError, match="truth value"):
        bool(t.n > 1)


def test_group_by_aggregates(nums):
    t = nums
    rs = t.where(t.n != None).group_by(t.ok).select(t.ok, n=count(), total=psum(t.n), top=pmax(t.n),  # noqa: E711
                                                     avg=mean(t.f), c=count(t.s)).order_by(t.ok).collect()
    assert list(rs) == [{"ok": False, "n": 5, "total": 25, "top": 9, "avg": pytest.approx(1.25), "c": 5},
                        {"ok": True, "n": 5, "total": 20, "top": 8, "avg": pytest.approx(1.0), "c": 5}]
    assert t.group_by(t.ok).count() == 3  # False, True, NULL
    assert t.select(count()).collect()[0] == {"col_0": 11}


def test_head_tail_resultset_pandas_html_cursor(nums, files):
    t = nums
    assert [r["n"] for r in t.head(3)] == [0, 1, 2]
    assert [r["n"] for r in t.tail(2)] == [9, None]
    rs = t.select(t.n, t.s).where(t.n < 3).order_by(t.n).collect()
    assert len(rs) == 3 and rs["s"] == ["Item 0", "Item 1", "Item 2"] and rs[1] == {"n": 1, "s": "Item 1"}
    assert rs[2, "s"] == "Item 2"
    df = rs.to_pandas()
    assert list(df.columns) == ["n", "s"] and df["n"].tolist() == [0, 1, 2]
    html = rs._repr_html_()
    assert "<table" in html and "Item 1" in html
    pics = pxt.create_table("pics", {"image": pxt.Image})
    pics.insert([{"image": photo(files / "h.png")}])
    html = pics.collect()._repr_html_()
    assert '<img src="data:image/' in html
    # streaming through a server-side cursor: all rows, batch by batch
    big = pxt.create_table("big", {"x": pxt.Int})
    big.insert([{"x": i} for i in range(2500)], show_progress=False)
    seen = [r["x"] for r in big.order_by(big.x).cursor(batch_size=100)]
    assert seen == list(range(2500))


def test_update_delete_and_schema_changes(px):
    t = pxt.create_table("u", {"x": pxt.Int, "s": pxt.String, "j": pxt.Json})
    t.insert([{"x": i, "s": f"s{i}"} for i in range(5)])
    t.add_computed_column(y=t.x * 10)
    assert t.update({"s": "big"}, where=t.x >= 3).num_rows == 2
    assert t.update({t.x: t.x + 100}, where=t.s == "s0").num_rows == 1
    assert t.update({"j": {"a": 1}}, where=t.x == 1).num_rows == 1
    got = {r["s"]: (r["x"], r["y"], r["j"]) for r in t.collect()}
    assert got["s0"] == (100, 1000, None) and got["s1"] == (1, 10, {"a": 1}) and got["big"][1] == got["big"][0] * 10
    with pytest.raises(pxt.Error, match="computed"):
        t.update({"y": 1})
    assert t.delete(where=t.s == "big").num_rows == 2 and t.count() == 3
    t.add_column(note=pxt.String)
    t.add_column(flag=bool)
    assert t.columns()[3:] == ["y", "note", "flag"] and t.flag.col_type == pxt.Bool
    t.rename_column("note", "remark")
    assert "remark" in t.columns() and "note" not in t.columns()
    t.add_computed_column(z=t.y + 1)
    with pytest.raises(pxt.Error, match="depend"):
        t.drop_column(t.y)
    t.drop_column("z")
    assert "z" not in t.columns()
    assert t.recompute_columns("y").num_rows == 3
    text = t._describe_text()
    assert "y" in text and '"x" * 10' in text
    assert t.delete().num_rows == 3 and t.count() == 0


def test_image_methods_and_dataset_shapes(px, files):
    t = pxt.create_table("imgs", {"image": pxt.Image})
    t.insert([{"image": photo(files / f"i{i}.jpg", i, size=(80, 60))} for i in range(3)])
    t.add_computed_column(thumb=t.image.resize((32, 16)))
    rs = t.select(t.image.width, t.image.height, t.thumb.width, t.image.rotate(90).width,
                  t.image.rotate(90, expand=True).width, t.image.crop((0, 0, 10, 20)).height,
                  t.image.convert("L").mode, t.image.thumbnail((40, 40)).width, t.image.get_metadata()).collect()
    assert rs.rows[0][:8] == (80, 60, 32, 80, 60, 20, "L", 40) and rs.rows[0][8]["width"] == 80


# --- UDFs -------------------------------------------------------------------------------------------------
@pxt.udf
def shout(s: str, times: int) -> str:
    """Upper-case and repeat."""
    return (s.upper() + "!") * times


@pxt.udf
def brightness(img: pxt.Image) -> float:
    import numpy as np

    return float(np.asarray(img.convert("L"), dtype=np.float64).mean())


@pxt.udf
def inverted(img: pxt.Image) -> pxt.Image:
    from PIL import ImageOps

    return ImageOps.invert(img.convert("RGB"))


@pxt.udf
def tag_count(meta: dict) -> pxt.Json:
    return {"n": len(meta.get("tags", []))}


def test_udf_becomes_a_server_function(px, files):
    t = pxt.create_table("ut", {"s": pxt.String, "image": pxt.Image, "meta": pxt.Json})
    p = photo(files / "u.png", 5, size=(20, 10))
    t.insert([{"s": "hey", "image": p, "meta": {"tags": [1, 2, 3]}}])
    t.add_computed_column(loud=shout(t.s, 2))
    t.add_computed_column(b=brightness(t.image))
    t.add_computed_column(inv=inverted(t.image))
    t.add_computed_column(tc=tag_count(t.meta))
    row = t.select(t.loud, t.b, t.inv, t.tc, width=t.inv.width).collect()[0]
    arr = np.asarray(Image.open(p).convert("L"), dtype=np.float64)
    assert row["loud"] == "HEY!HEY!" and row["b"] == pytest.approx(arr.mean()) and row["tc"] == {"n": 3}
    assert row["inv"].startswith("media://") and row["width"] == 20
    inv = np.asarray(Image.open(px.fetchone("SELECT pxt.media_path(%s)", (row["inv"],))[0]).convert("RGB"))
    assert (inv == 255 - np.asarray(Image.open(p).convert("RGB"))).all()
    # callable from SQL, source stored in the database
    with psycopg.connect(px.dsn, autocommit=True) as c:
        assert c.execute("SELECT public.shout('a', 3)").fetchone()[0] == "A!A!A!"
        src = c.execute("SELECT prosrc FROM pg_proc WHERE proname = 'shout'").fetchone()[0]
    assert "def shout(s, times):" in src and "(s.upper() + '!') * times" in src
    # a new row is computed by the database; a NULL argument gives NULL without calling the function
    t.insert([{"s": "yo", "image": p}])
    assert t.where(t.s == "yo").select(t.loud, t.tc).collect().rows == [("YO!YO!", None)]


def test_udf_needs_a_role_that_may_create_untrusted_functions(db, dsn):
    db.execute("SELECT pxt.create_table('words', '{\"s\": \"string\"}')")
    db.execute("INSERT INTO words (s) VALUES ('hi')")
    db.execute("CREATE ROLE pxt_plain LOGIN")
    db.execute("GRANT CREATE ON SCHEMA public TO pxt_plain")
    db.execute("GRANT SELECT ON words TO pxt_plain")
    db.execute("GRANT pxt_reader TO pxt_plain")  # reads the catalog API, may not create functions
    try:
        s = pxt.init(psycopg.conninfo.make_conninfo(dsn, user="pxt_plain"))
        t = pxt.get_table("words")
        assert t.select(t.s.upper()).collect().rows == [("HI",)]
        with pytest.raises(pxt.Error, match="plpython3u.*untrusted.*superusers") as e:
            t.select(shout(t.s, 1)).collect()
        assert "pxt_plain" in str(e.value) and e.value.hint and "create_sql" in e.value.hint
        assert shout.create_sql().startswith('CREATE OR REPLACE FUNCTION "public"."shout"("s" TEXT, "times" BIGINT)')
        s.close()
    finally:
        db.execute("DROP OWNED BY pxt_plain CASCADE")
        db.execute("DROP ROLE pxt_plain")


def test_udf_rejects_untyped_functions():
    with pytest.raises(TypeError, match="annotation"):
        @pxt.udf
        def f(x):
            return x


# --- progress ---------------------------------------------------------------------------------------------
def test_backfill_progress_is_reported(px, monkeypatch):
    from pixelgres.client import progress

    seen = []
    monkeypatch.setattr(progress.LazyBar, "update_to",
                        lambda self, done, total, errors=None: seen.append((done, total, errors)))
    t = pxt.create_table("prog", {"x": pxt.Int})
    px.execute("INSERT INTO prog (x) SELECT g FROM generate_series(1, 6000) g")
    st = t.add_computed_column(sq=t.x * t.x)
    assert st.num_rows == 6000 and seen and seen[-1] == (6000, 6000, 0)


# --- PyTorch --------------------------------------------------------------------------------------------------
def test_to_pytorch_dataset_with_two_dataloader_workers(px, files, private_dir):
    import torch
    from torch.utils.data import DataLoader

    t = pxt.create_table("train", {"image": pxt.Image, "label": pxt.Int})
    paths = [photo((files if i % 2 else private_dir) / f"d{i}.png", 100 + i, size=(24, 16)) for i in range(12)]
    t.insert([{"image": p, "label": i} for i, p in enumerate(paths)])
    ds = t.select(t.image, t.label).to_pytorch_dataset()
    loader = DataLoader(ds, batch_size=4, num_workers=2)
    labels, count_batches = [], 0
    for batch in loader:
        count_batches += 1
        assert batch["image"].dtype == torch.float32 and batch["image"].shape[1:] == (3, 16, 24)
        assert 0.0 <= float(batch["image"].min()) and float(batch["image"].max()) <= 1.0
        for img, label in zip(batch["image"], batch["label"].tolist()):
            expected = torch.from_numpy(np.array(Image.open(paths[label]).convert("RGB"))).permute(2, 0, 1) / 255.0
            assert torch.allclose(img, expected)
            labels.append(label)
    assert sorted(labels) == list(range(12))  # each row once: disjoint shards
    # 'np': HxWxC uint8; a computed image column and a filter work the same way
    t.add_computed_column(small=t.image.resize((8, 6)))
    np_rows = list(t.where(t.label < 3).select(t.small, t.label).to_pytorch_dataset(image_format="np"))
    assert len(np_rows) == 3 and all(r["small"].shape == (6, 8, 3) and r["small"].dtype == np.uint8 for r in np_rows)
    with pytest.raises(ValueError):
        t.to_pytorch_dataset(image_format="jpg")


# --- versioning, views, embeddings ---------------------------------------------------------------------------
def _missing(s, *names):
    return [n for n in names if not s.has_function(n)]


def test_history_revert_snapshot_time_travel(px):
    assert _missing(px, "history", "revert", "create_snapshot", "at_version") == []
    t = pxt.create_table("v", {"x": pxt.Int})
    t.insert([{"x": 1}, {"x": 2}])
    t.insert([{"x": 3}])
    hist = list(t.history())
    assert hist[0]["version"] == 2 and hist[0]["inserts"] == 1
    snap = pxt.create_snapshot("v_snap", t)
    t.delete(where=t.x == 1)
    assert sorted(snap.collect()["x"]) == [1, 2, 3]
    with pytest.raises(pxt.Error, match="read-only"):
        snap.insert([{"x": 9}])
    old = pxt.get_table("v:1")
    assert sorted(old.collect()["x"]) == [1, 2]
    t.revert()                                   # undo the delete
    assert sorted(t.collect()["x"]) == [1, 2, 3]
    with pytest.raises(pxt.Error, match="pins version 2"):
        t.revert(if_pinned="error")
    t.revert()                                   # undo the insert of 3: the snapshot keeps it
    assert sorted(t.collect()["x"]) == [1, 2] and sorted(snap.collect()["x"]) == [1, 2, 3]
    pxt.drop_table(snap)


def test_similarity_orders_by_the_index(px):
    assert _missing(px, "add_embedding_index", "embed", "test_embedding") == []
    t = pxt.create_table("docs", {"text": pxt.String})
    t.insert([{"text": s} for s in ["a dog in the park", "a cat on a mat", "stock market news", "dogs playing"]])
    t.add_embedding_index("text", embedding=pxt.function("test_embedding").using(dims=64))
    sim = t.text.similarity(string="a dog playing in the park")
    rs = t.order_by(sim, asc=False).limit(2).select(t.text, score=sim).collect()
    assert set(rs["text"]) == {"a dog in the park", "dogs playing"}
    assert rs["score"][0] >= rs["score"][1]
    # the query is the index-usable shape: ORDER BY the distance to a constant, LIMIT k
    px.execute("SET enable_seqscan = off")  # 4 rows: make the planner show whether the index can serve it
    plan = "\n".join(r[0] for r in px.fetchall("EXPLAIN " + t.order_by(sim, asc=False).limit(2).select(t.text).sql()))
    px.execute("RESET enable_seqscan")
    assert "Index Scan" in plan and "text_embedding" in plan, plan
    t.drop_embedding_index(column="text")
    with pytest.raises(pxt.Error, match="no embedding index"):
        t.order_by(t.text.similarity(string="x")).collect()


def test_create_table_from_a_source_infers_the_schema(px):
    import pandas as pd

    df = pd.DataFrame({"name": ["a", "b"], "n": [1, 2], "x": [0.5, None], "ok": [True, False]})
    t = pxt.create_table("inferred", source=df)
    assert {c: t[c].col_type for c in t.columns()} == {"name": pxt.String, "n": pxt.Int, "x": pxt.Float,
                                                       "ok": pxt.Bool}
    assert sorted(t.collect()["n"]) == [1, 2] and t.where(t.x == None).count() == 1  # noqa: E711


def test_init_without_dsn_starts_the_embedded_cluster(tmp_path, monkeypatch):
    from pixelgres.cluster import embedded_cluster

    monkeypatch.delenv("PIXELGRES_DSN", raising=False)
    monkeypatch.setenv("PIXELGRES_HOME", str(tmp_path / "home"))
    try:
        s = pxt.init()
        assert s.fetchone("SELECT current_database()")[0] == "pixelgres"
        t = pxt.create_table("hello", {"x": pxt.Int})
        t.insert([{"x": 42}])
        assert t.collect()["x"] == [42]
        s.close()
    finally:
        embedded_cluster().destroy()


def test_failed_insert_leaves_the_session_usable_for_uploads(dsn, private_dir):
    s = pxt.init(dsn)  # a fresh session: its first upload happens inside a failing insert
    try:
        t = pxt.create_table("once", {"image": pxt.Image, "x": pxt.Int})
        t.add_computed_column(inv=1 // (t.x - 1))
        p = photo(private_dir / "a.jpg", 1)
        with pytest.raises(pxt.Error, match="division by zero"):
            t.insert([{"image": p, "x": 1}])
        st = t.insert([{"image": p, "x": 2}])
        # the store file written during the failed insert stays (files are content-addressed and
        # immutable; the media vacuum collects unreferenced ones), so nothing needs uploading again
        assert st.num_rows == 1 and st.uploaded_files == 0
        assert t.select(t.image).collect()["image"][0].startswith("media://")
    finally:
        s.close()
