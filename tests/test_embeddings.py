"""Embedding indexes and similarity search, from SQL (psycopg, autocommit) as any client would."""
import random

import numpy as np
import psycopg
import pytest
from PIL import Image, ImageDraw, ImageEnhance

ANIMALS = ["A dog is running after a ball in the garden.", "The cat sleeps on the warm windowsill.",
           "Horses graze in the green meadow.", "A puppy chews on an old shoe.",
           "Birds are singing in the trees at dawn."]
FINANCE = ["The central bank raised interest rates again.", "Stock markets fell sharply after the report.",
           "Investors are moving money into government bonds.", "The company reported record quarterly profits.",
           "Inflation is eroding household savings."]
COOKING = ["Knead the dough and let it rise for an hour.", "Simmer the tomato sauce with garlic and basil.",
           "Whisk the eggs with sugar until fluffy.", "Roast the vegetables in a hot oven.",
           "Season the soup with salt and pepper before serving."]


def one(db, sql, *args):
    return db.execute(sql, args or None).fetchone()[0]


def texts_table(db, name, texts, extra=None):
    db.execute("SELECT pxt.create_table(%s, %s)", (name, '{"body": "string", "grp": "int"}'))
    db.execute(f"INSERT INTO {name} (body, grp) SELECT * FROM unnest(%s::text[], %s::bigint[])",
               (texts, [(extra or (lambda i: 0))(i) for i in range(len(texts))]))


def random_texts(n, seed, vocab_size=1000):
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 8)))
             for _ in range(vocab_size)]
    out = set()
    while len(out) < n:
        out.add(" ".join(rng.choice(vocab) for _ in range(rng.randint(4, 8))))
    return sorted(out)


# --- nearest neighbours, metrics, several indexes ---------------------------------------------
def test_each_row_is_its_own_nearest_neighbour_under_each_metric(db):
    texts_table(db, "t", random_texts(300, 1))
    ops = {"cosine": "<=>", "ip": "<#>", "l2": "<->"}
    for metric in ops:
        name = db.execute("SELECT pxt.add_embedding_index('t', 'body', embedding => 'pxt.test_embedding(dims => 48)', "
                          "metric => %s, name => %s)", (metric, f"v_{metric}")).fetchone()[0]
        assert name == f"v_{metric}"
    idx = {r[0]: r for r in db.execute("SELECT name, metric, index, dims, vector_column FROM pxt.embedding_indexes('t')")}
    assert set(idx) == {"v_cosine", "v_ip", "v_l2"} and all(r[3] == 48 for r in idx.values())
    opclass = dict(db.execute("SELECT c.relname, o.opcname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                              "JOIN pg_opclass o ON o.oid = i.indclass[0] WHERE i.indrelid = 'pxt_data.\"public.t\"'::regclass "
                              "AND c.relam = (SELECT oid FROM pg_am WHERE amname = 'hnsw')").fetchall())
    assert sorted(opclass.values()) == ["vector_cosine_ops", "vector_ip_ops", "vector_l2_ops"]
    with db.transaction():
        db.execute("SET LOCAL enable_seqscan = off")  # the index answers, not a sort
        for metric, op in ops.items():
            col = f"v_{metric}"
            plan = "\n".join(r[0] for r in db.execute(
                f'EXPLAIN SELECT a._pxt_rowid, (SELECT b._pxt_rowid FROM pxt_data."public.t" b '
                f'ORDER BY b.{col} {op} a.{col} LIMIT 1) FROM pxt_data."public.t" a'))
            assert f"Index Scan using t_{col}_hnsw" in plan
            wrong = one(db, 'SELECT count(*) FROM pxt_data."public.t" a '
                            'WHERE (SELECT b._pxt_rowid FROM pxt_data."public.t" b '
                            f"ORDER BY b.{col} {op} a.{col} LIMIT 1) <> a._pxt_rowid")
            assert wrong == 0, metric
    # the same through pxt.search, by the row's own text
    for body, rowid in db.execute('SELECT body, _pxt_rowid FROM pxt_data."public.t" '
                                  'ORDER BY _pxt_rowid LIMIT 20').fetchall():
        for metric in ops:
            top = db.execute("SELECT rowid, score FROM pxt.search('t', 'body', %s, k => 1, index => %s)",
                             (body, f"v_{metric}")).fetchall()
            assert top[0][0] == rowid
            assert top[0][1] == pytest.approx({"cosine": 1.0, "ip": 1.0, "l2": 1.0}[metric], abs=1e-5)


def test_several_indexes_need_a_name_and_drop_index(db):
    texts_table(db, "t", ANIMALS + FINANCE)
    a = one(db, "SELECT pxt.add_embedding_index('t', 'body', embedding => 'pxt.test_embedding()')")
    b = one(db, "SELECT pxt.add_embedding_index('t', 'body', embedding => 'pxt.test_embedding(dims => 16)', metric => 'l2')")
    assert (a, b) == ("body_embedding", "body_embedding_2")
    cols = {r[0]: (r[0], r[1].removeprefix("public."), r[2])
            for r in db.execute("SELECT name, type, is_computed FROM pxt.columns('t')")}
    assert cols["body_embedding"][1:] == ("vector(64)", True) and cols["body_embedding_2"][1:] == ("vector(16)", True)
    with pytest.raises(psycopg.Error, match="has 2 embedding indexes: body_embedding, body_embedding_2"):
        db.execute("SELECT * FROM pxt.search('t', 'body', 'dog')")
    assert db.execute("SELECT count(*) FROM pxt.search('t', 'body', 'dog', index => 'body_embedding_2')").fetchone()[0] == 5
    db.execute("SELECT pxt.drop_embedding_index('t', 'body_embedding')")
    assert [r[0] for r in db.execute("SELECT name FROM pxt.embedding_indexes('t')")] == ["body_embedding_2"]
    assert "body_embedding" not in {r[0] for r in db.execute("SELECT name FROM pxt.columns('t')")}
    # no HNSW index on a live column of that name is left (a versioned drop may keep the column,
    # renamed, with its index, for revert)
    assert one(db, "SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                   "AND a.attnum = i.indkey[0] WHERE i.indrelid = 'pxt_data.\"public.t\"'::regclass "
                   "AND a.attname = 'body_embedding'") == 0
    assert len(db.execute("SELECT * FROM pxt.search('t', 'body', 'dog')").fetchall()) == 5  # now unambiguous
    with pytest.raises(psycopg.Error, match="no embedding index 'nope'.*\n.*body_embedding_2"):
        db.execute("SELECT pxt.drop_embedding_index('t', 'nope')")
    # dropping the vector column with the ordinary API forgets the index too
    db.execute("SELECT pxt.drop_column('t', 'body_embedding_2')")
    assert one(db, "SELECT count(*) FROM pxt.embedding_indexes('t')") == 0
    with pytest.raises(psycopg.Error, match="column 'body' of public.t has no embedding index"):
        db.execute("SELECT pxt.embed('t', 'body', 'dog')")


def test_index_follows_inserts_updates_deletes(db):
    texts_table(db, "t", ANIMALS)
    db.execute("SELECT pxt.add_embedding_index('t', 'body', embedding => 'pxt.test_embedding(dims => 64)')")
    q = "SELECT row->>'body' FROM pxt.search('t', 'body', %s, k => 1)"
    db.execute("INSERT INTO t (body) VALUES ('quarterly revenue guidance for investors')")
    assert one(db, q, "revenue guidance") == "quarterly revenue guidance for investors"
    db.execute("UPDATE t SET body = 'a recipe for lemon tart' WHERE body LIKE 'quarterly%'")
    assert one(db, q, "lemon tart recipe") == "a recipe for lemon tart"
    assert one(db, "SELECT body_embedding = pxt.test_embedding('a recipe for lemon tart', 64) FROM t "
                   "WHERE body LIKE 'a recipe%'")
    db.execute("DELETE FROM t WHERE body LIKE 'a recipe%'")
    assert one(db, q, "lemon tart recipe") != "a recipe for lemon tart"
    db.execute("UPDATE t SET body = NULL WHERE body LIKE 'Horses%'")  # a NULL text has no vector: not found
    assert one(db, "SELECT count(*) FROM pxt.search('t', 'body', 'horses', k => 10)") == 4


# --- 10k vectors: recall, EXPLAIN, query embedded once, selective filter -----------------------------
@pytest.fixture
def big(db):
    texts_table(db, "big", random_texts(10_000, 7), extra=lambda i: i % 20)  # grp = 0 for 5% of rows
    db.execute("SELECT pxt.add_embedding_index('big', 'body', embedding => 'pxt.test_embedding(dims => 64)')")
    db.execute("ANALYZE big")
    return db


def test_recall_explain_and_selective_filter_on_10k(big):
    db = big
    queries = random_texts(40, 99)
    recall = []
    for qt in queries:
        approx = [r[0] for r in db.execute("SELECT rowid FROM pxt.search('big', 'body', %s, k => 10)", (qt,))]
        with db.transaction():
            db.execute("SET LOCAL enable_indexscan = off")
            exact = [r[0] for r in db.execute('SELECT _pxt_rowid FROM pxt_data."public.big" '
                                              "ORDER BY body_embedding <=> pxt.test_embedding(%s, 64) LIMIT 10",
                                              (qt,))]
        assert len(approx) == len(exact) == 10
        recall.append(len(set(approx) & set(exact)) / 10)
    assert np.mean(recall) >= 0.95, np.mean(recall)

    # the documented shape uses the HNSW index and embeds the query once
    shape = "SELECT body FROM big ORDER BY body_embedding <=> pxt.embed('big', 'body', %s) LIMIT 5"
    plan = "\n".join(r[0] for r in db.execute("EXPLAIN " + shape, (queries[0],)))
    assert "Index Scan using big_body_embedding_hnsw on \"public.big\"" in plan and "Seq Scan" not in plan
    with db.transaction():
        db.execute("SET LOCAL track_functions = 'pl'")
        rows = db.execute(shape, (queries[1] + " fresh",)).fetchall()
        embeds = one(db, "SELECT pg_stat_get_xact_function_calls('pxt.test_embedding(text,integer)'::regprocedure)")
        calls = one(db, "SELECT pg_stat_get_xact_function_calls('pxt.embed(text,text,text,text)'::regprocedure)")
    # the embedding function runs once; pxt.embed itself also computes the (unused) ORDER BY value
    # of each returned row, answered from its per-backend cache
    assert len(rows) == 5 and embeds == 1 and calls <= 1 + 5

    # a filter matching 5% of rows: plain HNSW (ef_search 40) stops short of k; iterative scans
    # (on by default in pxt.search) still return k
    filtered = ('SELECT _pxt_rowid, grp FROM pxt_data."public.big" WHERE grp = 0 ORDER BY body_embedding <=> '
                "pxt.embed('big', 'body', %s) LIMIT 20")
    with db.transaction():
        db.execute("SET LOCAL enable_seqscan = off")
        db.execute("SET LOCAL enable_bitmapscan = off")
        db.execute("SET LOCAL hnsw.iterative_scan = off")
        short = db.execute(filtered, (queries[2],)).fetchall()
        db.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        full = db.execute(filtered, (queries[2],)).fetchall()
    assert len(short) < 20 and len(full) == 20 and all(g == 0 for _, g in full)
    with db.transaction():
        db.execute("SET LOCAL enable_seqscan = off")  # make pxt.search's filtered query use the index too
        db.execute("SET LOCAL enable_bitmapscan = off")
        res = db.execute("SELECT rowid, row FROM pxt.search('big', 'body', %s, k => 20, filter => 'grp = 0')",
                         (queries[2],)).fetchall()
        assert one(db, "SHOW hnsw.iterative_scan") == "off"  # pxt.search put the setting back
    assert len(res) == 20 and all(r[1]["grp"] == 0 for r in res)
    with db.transaction():
        db.execute("SET LOCAL enable_indexscan = off")
        exact = {r[0] for r in db.execute(filtered, (queries[2],))}
    assert len(exact & {r[0] for r in res}) >= 16  # approximate, but the right neighbourhood
    # ef_search is exposed; a tiny one without iterative scan returns fewer rows
    with db.transaction():
        db.execute("SET LOCAL enable_seqscan = off")
        few = db.execute("SELECT count(*) FROM pxt.search('big', 'body', %s, k => 20, ef_search => 5, "
                         "iterative_scan => 'off')", (queries[3],)).fetchone()[0]
    assert few == 5


# --- precision --------------------------------------------------------------------------------------
def test_fp16_halfvec_and_dimension_limits(db):
    texts_table(db, "t", ANIMALS + COOKING)
    with pytest.raises(psycopg.Error, match="has 3000 dimensions; HNSW indexes vector up to 2000") as e:
        db.execute("SELECT pxt.add_embedding_index('t', 'body', embedding => 'pxt.test_embedding(dims => 3000)')")
    assert "dtype => 'fp16'" in e.value.diag.message_hint
    name = one(db, "SELECT pxt.add_embedding_index('t', 'body', embedding => 'pxt.test_embedding(dims => 3000)', "
                   "dtype => 'fp16', metric => 'ip')")
    assert one(db, "SELECT type FROM pxt.columns('t') WHERE name = %s", name).removeprefix("public.") == "halfvec(3000)"
    assert one(db, "SELECT o.opcname FROM pg_index i JOIN pg_opclass o ON o.oid = i.indclass[0] "
                   "WHERE i.indexrelid = 'pxt_data.t_body_embedding_hnsw'::regclass") == "halfvec_ip_ops"
    assert one(db, "SELECT row->>'body' FROM pxt.search('t', 'body', 'the puppy chews a shoe', k => 1)") == ANIMALS[3]
    # the plain-SQL shape works on halfvec too (pxt.embed's vector converts implicitly)
    assert one(db, "SELECT body FROM t ORDER BY body_embedding <#> pxt.embed('t', 'body', 'simmer tomato sauce') "
                   "LIMIT 1") == COOKING[1]
    with pytest.raises(psycopg.Error, match="HNSW indexes halfvec up to 4000"):
        db.execute("SELECT pxt.add_embedding_index('t', 'body', embedding => 'pxt.test_embedding(dims => 5000)', "
                   "dtype => 'fp16')")


def test_varchar_column_and_a_search_path_without_pgvector(db):
    db.execute("CREATE TABLE notes (id serial, title varchar(200))")
    db.execute("SELECT pxt.manage('notes')")
    db.execute("INSERT INTO notes (title) SELECT unnest(%s::text[])", (ANIMALS + COOKING,))
    assert one(db, "SELECT pxt.add_embedding_index('public.notes', 'title', embedding => 'pxt.test_embedding()', "
                   "metric => 'l2')") == "title_embedding"
    db.execute("SET search_path = pg_catalog")  # neither public (pgvector) nor pxt: searches still work
    assert one(db, "SELECT row->>'title' FROM pxt.search('public.notes', 'title', 'simmer the sauce', k => 1)") == COOKING[1]
    assert one(db, "SELECT row->>'title' FROM pxt.hybrid_search('public.notes', 'title', 'sauce', k => 1)") == COOKING[1]
    assert one(db, "SELECT title FROM public.notes ORDER BY title_embedding OPERATOR(public.<->) "
                   "pxt.embed('public.notes', 'title', 'a cat on the windowsill') LIMIT 1") == ANIMALS[1]


# --- real local models ----------------------------------------------------------------------------------
@pytest.mark.parametrize("embedding", ["pxt.sentence_transformer(model => 'all-MiniLM-L6-v2')", None])
def test_local_model_semantic_neighbours(db, embedding):
    texts_table(db, "t", ANIMALS + FINANCE + COOKING)
    name = one(db, "SELECT pxt.add_embedding_index('t', 'body', embedding => %s)", embedding)
    ix = db.execute("SELECT embedding, query_embedding, dims FROM pxt.embedding_indexes('t') WHERE name = %s",
                    (name,)).fetchone()
    if embedding is None:  # the measured default for text: e5-small; queries get the 'query' form
        assert ix == ("pxt.e5_small()", "pxt.e5_small(kind => 'query')", 384)
    else:
        assert ix == (embedding, None, 384)
    res = db.execute("SELECT row->>'body', score FROM pxt.search('t', 'body', 'a dog playing in the park', k => 5)").fetchall()
    assert res[0][0] == ANIMALS[0]
    assert sum(r[0] in ANIMALS for r in res[:3]) == 3, res
    assert [r[1] for r in res] == sorted((r[1] for r in res), reverse=True)
    assert one(db, "SELECT body FROM t ORDER BY body_embedding <=> pxt.embed('t', 'body', 'when will rates go up?') "
                   "LIMIT 1") in FINANCE
    assert one(db, "SELECT row->>'body' FROM pxt.search('t', 'body', 'baking bread at home', k => 1)") in COOKING
    # batched: a 30-row insert is one batch; the model was loaded once in this backend
    with db.cursor() as c:
        c.executemany("INSERT INTO t (body) VALUES (%s)", [(f"note number {i} about a kitten",) for i in range(3)])
    db.execute("INSERT INTO t (body) SELECT 'sentence ' || g FROM generate_series(1, 30) g")
    fn = "sentence_transformer" if embedding else "e5_small"
    loads, batches, texts = db.execute("SELECT loads, batches, texts FROM pxt.embedding_models() WHERE function = %s",
                                       (fn,)).fetchone()
    assert loads == 1
    assert texts >= 15 + 3 + 30 and batches <= 3 + 3 + 1 + 5  # backfill, 3 inserts, 1 insert of 30, queries
    assert one(db, "SELECT count(*) FROM t WHERE body_embedding IS NULL") == 0


# --- hybrid search ----------------------------------------------------------------------------------------
def test_hybrid_search_fuses_text_and_vector_ranks(db):
    docs = ANIMALS + FINANCE + COOKING + ["Error E4711 means the paper tray is empty.",
                                          "A kitten is playing with a ball of wool."]
    texts_table(db, "t", docs)
    db.execute("SELECT pxt.add_embedding_index('t', 'body')")  # e5-small
    res = db.execute("SELECT rowid, score, vector_rank, text_rank, row->>'body' "
                     "FROM pxt.hybrid_search('t', 'body', 'e4711', k => 3)").fetchall()
    assert res[0][4] == docs[15] and res[0][3] == 1  # the exact code: full text finds it
    for rowid, score, vr, tr, _ in res:
        assert score == pytest.approx((1 / (60 + vr) if vr else 0) + (1 / (60 + tr) if tr else 0))
    assert [r[1] for r in res] == sorted((r[1] for r in res), reverse=True)
    # a paraphrase with no shared words: the vector side carries it
    res = db.execute("SELECT row->>'body', text_rank FROM pxt.hybrid_search('t', 'body', 'young cat toy', k => 2)").fetchall()
    assert res[0][0] in (docs[16], ANIMALS[1]) and res[0][1] is None
    # both agree: top
    res = db.execute("SELECT row->>'body', vector_rank, text_rank FROM pxt.hybrid_search('t', 'body', "
                     "'interest rates bank', k => 1, filter => 'grp = 0')").fetchall()
    assert res == [(FINANCE[0], 1, 1)]
    # the full-text side can use an expression GIN index of the documented form
    db.execute("CREATE INDEX t_fts ON t USING gin (to_tsvector('english', body))")
    assert one(db, "SELECT row->>'body' FROM pxt.hybrid_search('t', 'body', 'dough rise', k => 1)") == COOKING[0]
    with pytest.raises(psycopg.Error, match="unknown text search configuration 'klingon'"):
        db.execute("SELECT * FROM pxt.hybrid_search('t', 'body', 'x', language => 'klingon')")


# --- images: non-learned near-duplicate search ----------------------------------------------------------
def scene(i: int) -> Image.Image:
    rng = random.Random(i)
    im = Image.new("RGB", (320, 240), tuple(rng.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(im)
    for _ in range(6):
        x, y = rng.randrange(280), rng.randrange(200)
        box = (x, y, x + rng.randrange(30, 150), y + rng.randrange(30, 120))
        fill = tuple(rng.randrange(256) for _ in range(3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=fill)
    return im


def test_image_features_find_near_duplicates(db, files):
    db.execute("SELECT pxt.create_table('pics', '{\"img\": \"image\"}')")
    for i in range(12):
        scene(i).save(files / f"orig{i}.png")
    db.execute("INSERT INTO pics (img) SELECT %s || '/orig' || g || '.png' FROM generate_series(0, 11) g", (str(files),))
    assert one(db, "SELECT pxt.add_embedding_index('pics', 'img')") == "img_embedding"
    assert one(db, "SELECT embedding FROM pxt.embedding_indexes('pics')") == "pxt.image_features()"
    for i in range(12):  # a smaller, re-encoded (JPEG), brighter copy, and a cropped one, find their original
        ImageEnhance.Brightness(scene(i).resize((160, 120))).enhance(1.15).save(files / f"small{i}.jpg", quality=70)
        scene(i).crop((16, 12, 304, 228)).save(files / f"crop{i}.png")
        for variant in (f"small{i}.jpg", f"crop{i}.png"):
            top = db.execute("SELECT row->>'img', score FROM pxt.search('pics', 'img', %s, k => 2)",
                             (str(files / variant),)).fetchall()
            assert top[0][0].endswith(f"/orig{i}.png") and top[0][1] > 0.85 and top[0][1] - top[1][1] > 0.2, top
    with pytest.raises(psycopg.Error, match="MediaError"):
        db.execute("SELECT * FROM pxt.search('pics', 'img', '/etc/passwd')")


# --- bad input --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("embedding, message", [
    ("pxt.test_embedding", "malformed embedding 'pxt.test_embedding': expected a function name followed by"),
    ("not a call()", "malformed embedding"),
    ("pxt.test_embedding(dims => 8); DROP TABLE t", "malformed embedding"),
    ("pxt.test_embedding(dims => 8) || pxt.test_embedding(dims => 8)", "expected a single function call"),
    ("pxt.test_embedding((SELECT 8))", "subqueries and statements are not allowed"),
    ("pxt.test_embedding(dims => 8) -- x", "malformed embedding"),
    ("pxt.test_embedding(body)", "cannot be evaluated"),
    ("upper()", "returns text, not a vector"),
    ("pxt.no_such_function()", "cannot be evaluated: function pxt.no_such_function"),
    ("pxt.sentence_transformer(model => 'no-such-model')", "unknown sentence-transformers model 'no-such-model'"),
    ("pxt.test_embedding(dims => 0)", "dims must be between 1 and 16000"),
])
def test_bad_embedding_text(db, embedding, message):
    texts_table(db, "t", ANIMALS)
    with pytest.raises(psycopg.Error, match=message.replace("(", r"\(").replace(")", r"\)")):
        db.execute("SELECT pxt.add_embedding_index('t', 'body', embedding => %s)", (embedding,))
    assert one(db, "SELECT count(*) FROM t") == 5  # nothing dropped, nothing added
    assert {r[0] for r in db.execute("SELECT name FROM pxt.columns('t')")} == {"body", "grp"}


def test_bad_parameters_and_hostile_input(db):
    texts_table(db, "t", ANIMALS + FINANCE)
    bad = [
        ("metric => 'hamming'", "unknown metric 'hamming': use 'cosine', 'ip' (inner product) or 'l2'"),
        ("dtype => 'int8'", "unknown dtype 'int8'"),
        ("m => 1", "m must be between 2 and 100"),
        ("m => 32, ef_construction => 40", "ef_construction (40) must be at least 2 * m (64)"),
        ("name => '_pxt_x'", "reserved"),
        ("name => 'body'", "column 'body' already exists"),
    ]
    for arg, message in bad:
        with pytest.raises(psycopg.Error) as e:
            db.execute(f"SELECT pxt.add_embedding_index('t', 'body', embedding => 'pxt.test_embedding()', {arg})")
        assert message in str(e.value)
    with pytest.raises(psycopg.Error, match="column 'nope' does not exist in public.t"):
        db.execute("SELECT pxt.add_embedding_index('t', 'nope')")
    with pytest.raises(psycopg.Error, match="table 'missing' does not exist"):
        db.execute("SELECT pxt.add_embedding_index('missing', 'body')")
    with pytest.raises(psycopg.Error, match="no default embedding for column 'grp' of type bigint"):
        db.execute("SELECT pxt.add_embedding_index('t', 'grp')")
    db.execute("SELECT pxt.add_embedding_index('t', 'body', embedding => 'pxt.test_embedding()')")
    for flt, message in [("true) OR (true", "unbalanced parentheses"), ("grp = 0; DROP TABLE t", "';' is not allowed"),
                         ("grp IN (SELECT 1)", "subqueries"), ("grp = 0 -- x", "comments"),
                         ("grp = $$0$$", "not allowed"), ("grp + 1", "argument of AND must be type boolean"),
                         ("nope = 1", 'column "nope" does not exist')]:
        with pytest.raises(psycopg.Error) as e:
            db.execute("SELECT * FROM pxt.search('t', 'body', 'x', filter => %s)", (flt,))
        assert message in str(e.value), (flt, str(e.value))
    hostile = "'); DROP TABLE t; --\" $$ \\"
    assert len(db.execute("SELECT * FROM pxt.search('t', 'body', %s)", (hostile,)).fetchall()) == 5
    assert len(db.execute("SELECT * FROM pxt.hybrid_search('t', 'body', %s)", (hostile,)).fetchall()) == 5
    assert one(db, "SELECT count(*) FROM t ORDER BY 1 LIMIT 1") == 10
    for call, message in [("pxt.search('t', 'body', 'x', k => 0)", "k must be at least 1"),
                          ("pxt.search('t', 'body', 'x', index => 'zz')", "no embedding index 'zz' on column 'body'"),
                          ("pxt.search('t', 'body', 'x', iterative_scan => 'sometimes')", "iterative_scan must be one of"),
                          ("pxt.search('t', 'body', 'x', ef_search => 5000)", "ef_search must be between 1 and 1000"),
                          ("pxt.search('t', 'body', NULL)", "the query must not be NULL"),
                          ("pxt.search('t', 'body', '   ')", "the embedding of query '   ' is NULL"),
                          ("pxt.search('t', 'grp', 'x')", "column 'grp' of public.t has no embedding index"),
                          ("pxt.hybrid_search('t', 'body', 'x', rrf_k => -1)", "rrf_k must be at least 0")]:
        with pytest.raises(psycopg.Error) as e:
            db.execute(f"SELECT * FROM {call}")
        assert message in str(e.value), (call, str(e.value))
    assert one(db, "SELECT 1") == 1  # the session is fine


# --- versioning -----------------------------------------------------------------------------------------
def test_revert_removes_and_restores_vectors(db):
    """An embedding index is a computed column plus a plain index: versioning covers it."""
    texts_table(db, "t", ANIMALS)
    db.execute("SELECT pxt.add_embedding_index('t', 'body', embedding => 'pxt.test_embedding(dims => 64)')")
    top = "SELECT row->>'body' FROM pxt.search('t', 'body', %s, k => 1)"
    db.execute("INSERT INTO t (body) VALUES ('quarterly revenue guidance for investors')")
    assert one(db, top, "revenue guidance") == "quarterly revenue guidance for investors"
    db.execute("SELECT pxt.revert('t')")  # the insert: row and vector gone
    assert one(db, top, "revenue guidance") != "quarterly revenue guidance for investors"
    db.execute("UPDATE t SET body = 'a recipe for lemon tart' WHERE body = %s", (ANIMALS[2],))
    assert one(db, top, "horses graze meadow") != ANIMALS[2]
    db.execute("SELECT pxt.revert('t')")  # the update: old text and old vector back, found again
    assert one(db, top, "horses graze meadow") == ANIMALS[2]
    assert one(db, "SELECT body_embedding = pxt.test_embedding(body, 64) FROM t WHERE body = %s", ANIMALS[2])
    db.execute("DELETE FROM t WHERE body = %s", (ANIMALS[3],))
    db.execute("SELECT pxt.revert('t')")  # the delete
    assert one(db, top, "a puppy chews an old shoe") == ANIMALS[3]
    db.execute("SELECT pxt.drop_embedding_index('t', 'body_embedding')")
    assert one(db, "SELECT count(*) FROM pxt.embedding_indexes('t')") == 0
    db.execute("SELECT pxt.revert('t')")  # the drop: the index is back, searchable, its HNSW index in use
    assert [r[0] for r in db.execute("SELECT name FROM pxt.embedding_indexes('t')")] == ["body_embedding"]
    assert one(db, top, "cat sleeps on the windowsill") == ANIMALS[1]
    db.execute("INSERT INTO t (body) VALUES ('a kitten naps in the sun')")
    assert one(db, top, "kitten naps sun") == "a kitten naps in the sun"
    # reverting the creation removes the column, its HNSW index and the catalog entry
    db.execute("SELECT pxt.add_embedding_index('t', 'body', embedding => 'pxt.test_embedding(dims => 8)', name => 'tiny')")
    db.execute("SELECT pxt.revert('t')")
    assert [r[0] for r in db.execute("SELECT name FROM pxt.embedding_indexes('t')")] == ["body_embedding"]
    assert "tiny" not in {r[0] for r in db.execute("SELECT name FROM pxt.columns('t')")}


def test_updates_work_whatever_the_search_path(db):
    """Vector columns compare with pgvector's '=' (schema public): the generated triggers must
    not depend on the writer's search_path to detect changes."""
    db.execute("SELECT pxt.create_table('sp', '{\"body\": \"string\"}')")
    db.execute("SELECT pxt.add_computed_column('sp', 'vec', 'pxt.test_embedding(body, 8)')")
    db.execute("SELECT pxt.add_computed_column('sp', 'n', 'length(body)')")
    db.execute("INSERT INTO sp (body) VALUES ('one'), ('three')")
    db.execute("SET search_path = pg_catalog")
    db.execute("UPDATE public.sp SET body = body || '!'")
    assert db.execute("SELECT sum(n) FROM public.sp").fetchone()[0] == 10
    db.execute("RESET search_path")
