"""Parquet exports and Parquet / CSV / JSON-lines imports, to and from buckets and server files,
from SQL and from pxt (against moto in server mode, as tests/test_buckets.py)."""
import io
import json

import psycopg
import pyarrow.parquet as pq
import pytest
from test_buckets import buckets, jpeg, requests, tmp_path  # noqa: F401

import pixelgres as pxt
from pixelgres.testing.s3_server import s3_server, s3_server_session  # noqa: F401


def read_parquet(s3, bucket, key):
    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


@pytest.fixture
def images(db, s3_server, buckets):
    src, _ = buckets
    for i in range(3):
        s3_server.put_object(src, f"i{i}.jpg", jpeg((40 * i, 0, 0), size=(20 + i, 10)))
    db.execute("SELECT pxt.create_table('ml.images', '{\"image\": \"image\", \"label\": \"string\", "
               "\"n\": \"int\", \"meta\": \"json\"}')")
    db.execute("SELECT pxt.add_computed_column('ml.images', 'w', 'pxt.width(image)')")
    for i in range(3):
        db.execute("INSERT INTO ml.images (image, label, n, meta) VALUES (%s, %s, %s, %s)",
                   (f"s3://{src}/i{i}.jpg", f"label {i}", i, json.dumps({"k": [i, "x"]})))
    return src


def test_export_to_a_bucket_and_import_back(db, s3_server, buckets, images):
    _, dst = buckets
    uri = f"s3://{dst}/exports/images.parquet"
    out = db.execute("SELECT pxt.export_parquet('SELECT image, label, n, meta, w FROM ml.images ORDER BY n', %s)",
                     (uri,)).fetchone()[0]
    assert (out["destination"], out["rows"]) == (uri, 3)
    t = read_parquet(s3_server, dst, "exports/images.parquet")
    assert t.column_names == ["image", "label", "n", "meta", "w"]
    assert t.column("image").to_pylist() == [f"s3://{images}/i{i}.jpg" for i in range(3)]
    assert t.column("w").to_pylist() == [20, 21, 22]
    assert [json.loads(m) for m in t.column("meta").to_pylist()] == [{"k": [i, "x"]} for i in range(3)]
    # and back, into a table with the same inputs: its computed column is computed again
    db.execute("SELECT pxt.create_table('ml.copy', '{\"image\": \"image\", \"label\": \"string\", "
               "\"n\": \"int\", \"meta\": \"json\"}')")
    db.execute("SELECT pxt.add_computed_column('ml.copy', 'h', 'pxt.height(image)')")
    v0 = db.execute("SELECT version FROM pxt.list_tables() WHERE name = 'ml.copy'").fetchone()[0]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"\['w'\] are not columns of ml.copy"):
        db.execute("SELECT pxt.import_rows('ml.copy', %s)", (uri,))
    db.execute("SELECT pxt.export_parquet('SELECT image, label, n, meta FROM ml.images', %s)",
               (f"s3://{dst}/exports/inputs.parquet",))  # the same name again would overwrite
    assert db.execute("SELECT pxt.import_rows('ml.copy', %s)", (f"s3://{dst}/exports/inputs.parquet",)).fetchone()[0] == 3
    got = db.execute("SELECT image, label, n, meta, h FROM ml.copy ORDER BY n").fetchall()
    want = db.execute("SELECT image, label, n, meta, 10 FROM ml.images ORDER BY n").fetchall()
    assert got == want
    assert db.execute("SELECT version FROM pxt.list_tables() WHERE name = 'ml.copy'").fetchone()[0] > v0


def test_export_overwrites_and_embeds_media(db, s3_server, buckets, images):
    _, dst = buckets
    uri = f"s3://{dst}/exports/e.parquet"
    db.execute("SELECT pxt.export_parquet('SELECT 1 AS x', %s)", (uri,))
    db.execute("SELECT pxt.export_parquet('SELECT image, n FROM ml.images ORDER BY n', %s, embed_media => true)",
               (uri,))
    t = read_parquet(s3_server, dst, "exports/e.parquet")
    assert t.column_names == ["image", "image__bytes", "n"]
    for i, b in enumerate(t.column("image__bytes").to_pylist()):
        assert b == s3_server.client().get_object(Bucket=images, Key=f"i{i}.jpg")["Body"].read()


def test_export_and_import_refusals(db, s3_server, buckets, images, dsn, files):
    _, dst = buckets
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="outside pixelgres.allowed_buckets"):
        db.execute("SELECT pxt.export_parquet('SELECT 1', 's3://elsewhere/x.parquet')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="export query: .*multi|cannot open multi-query"):
        db.execute("SELECT pxt.export_parquet('SELECT 1; DROP TABLE ml.images', %s)", (f"s3://{dst}/exports/x.parquet",))
    assert db.execute("SELECT count(*) FROM ml.images").fetchone()[0] == 3
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="export query: .*syntax"):
        db.execute("SELECT pxt.export_parquet('SELEC 1', %s)", (f"s3://{dst}/exports/x.parquet",))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match='column "a" specified more than once'):
        db.execute("SELECT pxt.export_parquet('SELECT 1 AS a, 2 AS a', %s)", (f"s3://{dst}/exports/x.parquet",))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="absolute server path or an object-store URI"):
        db.execute("SELECT pxt.export_parquet('SELECT 1', 'relative.parquet')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="no such object"):
        db.execute("SELECT pxt.import_rows('ml.images', %s)", (f"s3://{dst}/exports/missing.parquet",))
    # server files: COPY's rule
    local = files / "out.parquet"
    assert db.execute("SELECT pxt.export_parquet('SELECT n FROM ml.images', %s)", (str(local),)).fetchone()[0]["rows"] == 3
    assert pq.read_table(local).column("n").to_pylist() == [0, 1, 2]
    db.execute("CREATE ROLE exporter LOGIN")
    db.execute("GRANT pxt_user TO exporter")
    try:
        with psycopg.connect(dsn, user="exporter", autocommit=True) as c:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="pg_write_server_files"):
                c.execute("SELECT pxt.export_parquet('SELECT 1', %s)", (str(files / "x.parquet"),))
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="pg_read_server_files"):
                c.execute("SELECT pxt.import_rows('ml.images', %s)", (str(local),))
    finally:
        db.execute("DROP OWNED BY exporter")
        db.execute("DROP ROLE exporter")
    assert not any(p.name.startswith("out.parquet.tmp") for p in files.iterdir())


def test_import_csv_and_jsonl_from_a_bucket(db, s3_server, buckets, images):
    src, _ = buckets
    s3_server.put_object(src, "rows.csv", f'image,label,n\ns3://{src}/i0.jpg,"a, quoted",7\n'.encode())
    s3_server.put_object(src, "rows.jsonl", (json.dumps({"image": f"s3://{src}/i1.jpg", "n": 8, "meta": {"a": 1}})
                                             + "\n\n").encode())
    assert db.execute("SELECT pxt.import_rows('ml.images', %s)", (f"s3://{src}/rows.csv",)).fetchone()[0] == 1
    assert db.execute("SELECT pxt.import_rows('ml.images', %s)", (f"s3://{src}/rows.jsonl",)).fetchone()[0] == 1
    assert db.execute("SELECT label, n, w, meta FROM ml.images WHERE n >= 7 ORDER BY n").fetchall() == [
        ("a, quoted", 7, 20, None), (None, 8, 21, {"a": 1})]
    s3_server.put_object(src, "bad.jsonl", b'{"n": 1}\n[1, 2]\n')
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="line 2"):
        db.execute("SELECT pxt.import_rows('ml.images', %s)", (f"s3://{src}/bad.jsonl",))
    # a media value that is not there: the insert's check names the row and column, nothing lands
    s3_server.put_object(src, "gone.csv", f"image,n\ns3://{src}/i2.jpg,9\ns3://{src}/nope.jpg,10\n".encode())
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="column image of ml.images"):
        db.execute("SELECT pxt.import_rows('ml.images', %s)", (f"s3://{src}/gone.csv",))
    assert db.execute("SELECT count(*) FROM ml.images WHERE n >= 9").fetchone()[0] == 0


def test_python_api_over_buckets(dsn, db, s3_server, buckets, tmp_path):
    src, dst = buckets
    for i in range(4):
        s3_server.put_object(src, f"p{i}.jpg", jpeg((0, 50 * i, 0), size=(30, 20)))
    s = pxt.init(dsn)
    try:
        t = pxt.create_table("photos", {"image": pxt.Image, "i": pxt.Int})
        status = t.insert([{"image": f"s3://{src}/p{i}.jpg", "i": i} for i in range(4)])
        assert status.num_rows == 4
        assert len(requests(s3_server, "GET")) == 4  # prefetched once each, then checked from the cache
        t.add_computed_column(thumb=t.image.resize((8, 4)), destination=f"s3://{dst}/thumbs/")
        thumbs = [r["thumb"] for r in t.select(t.thumb).order_by(t.i).collect()]
        assert all(x.startswith(f"s3://{dst}/thumbs/") for x in thumbs)
        out = t.select(t.image, t.i).to_parquet(f"s3://{dst}/exports/photos.parquet")
        assert out["rows"] == 4
        local = t.select(t.i, t.thumb).order_by(t.i).to_parquet(tmp_path / "photos.parquet", batch_size=3)
        assert (local["rows"], local["row_groups"]) == (4, 2)
        assert pq.read_table(tmp_path / "photos.parquet").column("thumb").to_pylist() == thumbs
        t2 = pxt.create_table("photos2", {"image": pxt.Image, "i": pxt.Int})
        assert t2.insert(f"s3://{dst}/exports/photos.parquet").num_rows == 4
        assert sorted(r["i"] for r in t2.select(t2.i).collect()) == [0, 1, 2, 3]
        ds = t.select(t.thumb).order_by(t.i).to_pytorch_dataset(image_format="np")
        shapes = [tuple(x["thumb"].shape) for x in ds]
        assert shapes == [(4, 8, 3)] * 4
    finally:
        s.close()
