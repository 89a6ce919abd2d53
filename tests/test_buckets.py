"""Media in buckets, from SQL: reading through the cache, destinations, the allow-list, faults.

A real S3 API (moto in server mode, behind the counting, fault-injecting proxy of
pixelgres.testing.s3_server) is reached by the server's own code path: the endpoint and the
credentials come from a pixelgres.storage_config file, as an operator would write one.
"""
import hashlib
import io
import json
import re
import uuid

import psycopg
import pytest
from conftest import set_for_database
from PIL import Image

from pixelgres.testing.media import grey_video
from pixelgres.testing.s3_server import ACCESS_KEY, SECRET_KEY, s3_server, s3_server_session  # noqa: F401


def jpeg(color=(200, 30, 30), size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_config(path, s3, extra: str = "", access_key=ACCESS_KEY, secret_key=SECRET_KEY):
    path.write_text(f'["s3://"]\nendpoint = "{s3.endpoint}"\nallow_http = true\nregion = "us-east-1"\n'
                    f'access_key_id = "{access_key}"\nsecret_access_key = "{secret_key}"\nretries = 2\n{extra}')
    path.chmod(0o644)
    return path


@pytest.fixture
def tmp_path(files):
    """A directory the server's OS user can read and write too (it may not be ours)."""
    return files


@pytest.fixture
def buckets(db, dbname, s3_server, tmp_path):
    """Two fresh buckets (src: inputs, dst: destinations) that this database may use: set for
    the database (every new session: clients, workers) and in this session."""
    tag = uuid.uuid4().hex[:12]
    src, dst = s3_server.create_bucket(f"src-{tag}"), s3_server.create_bucket(f"dst-{tag}")
    cfg = write_config(tmp_path / "storage.toml", s3_server)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache").chmod(0o777)
    set_for_database(db, dbname, {"pixelgres.storage_config": str(cfg),
                                  "pixelgres.allowed_buckets": f"s3://{src}/,s3://{dst}/thumbs/,s3://{dst}/exports/",
                                  "pixelgres.object_cache_dir": str(tmp_path / "cache")})
    s3_server.reset()
    return src, dst


def requests(s3, method=None, key=None):
    return [r for r in s3.requests if (method is None or r.method == method) and (key is None or key in r.path)]


def images_table(db):
    db.execute("SELECT pxt.create_table('ml.images', '{\"image\": \"image\"}')")


def test_image_from_a_bucket_is_validated_and_read_through_the_cache(db, s3_server, buckets):
    src, _ = buckets
    s3_server.put_object(src, "2024/a.jpg", jpeg(size=(64, 48)))
    images_table(db)
    db.execute("INSERT INTO ml.images (image) VALUES (%s)", (f"s3://{src}/2024/a.jpg",))
    gets_after_insert = len(requests(s3_server, "GET", "a.jpg"))
    assert gets_after_insert == 1  # the insert's check downloaded it once
    heads = len(requests(s3_server, "HEAD", "a.jpg"))
    assert db.execute("SELECT pxt.width(image), pxt.height(image) FROM ml.images").fetchone() == (64, 48)
    # later reads are cache hits: within pixelgres.object_cache_max_age of the last HEAD, no request
    assert len(requests(s3_server, "GET", "a.jpg")) == 1 and len(requests(s3_server, "HEAD", "a.jpg")) == heads
    # with max_age 0, each read checks the version with one HEAD, and still downloads nothing
    db.execute("SET pixelgres.object_cache_max_age = 0")
    assert db.execute("SELECT pxt.width(image) FROM ml.images").fetchone() == (64,)
    assert len(requests(s3_server, "GET", "a.jpg")) == 1 and len(requests(s3_server, "HEAD", "a.jpg")) == heads + 1


def test_changed_object_is_read_again(db, s3_server, buckets):
    src, _ = buckets
    db.execute("SET pixelgres.object_cache_max_age = 0")  # every read asks whether it changed
    s3_server.put_object(src, "c.jpg", jpeg(size=(10, 10)))
    assert db.execute("SELECT pxt.width(%s::pxt.image)", (f"s3://{src}/c.jpg",)).fetchone()[0] == 10
    s3_server.put_object(src, "c.jpg", jpeg(size=(20, 10)))
    assert db.execute("SELECT pxt.width(%s::pxt.image)", (f"s3://{src}/c.jpg",)).fetchone()[0] == 20


def test_thumbnails_go_to_the_destination_once(db, s3_server, buckets):
    src, dst = buckets
    for name, color in (("a.jpg", (255, 0, 0)), ("b.jpg", (0, 255, 0))):
        s3_server.put_object(src, name, jpeg(color, size=(300, 200)))
    images_table(db)
    db.execute("INSERT INTO ml.images (image) VALUES (%s), (%s)", (f"s3://{src}/a.jpg", f"s3://{src}/b.jpg"))
    db.execute("SELECT pxt.add_computed_column('ml.images', 'thumbnail', 'pxt.resize(image, 32, 16)', "
               "destination => %s)", (f"s3://{dst}/thumbs/",))
    rows = db.execute('SELECT image, thumbnail FROM pxt_data."ml.images" ORDER BY _pxt_rowid').fetchall()
    for image, thumb in rows:
        m = re.fullmatch(rf"s3://{dst}/thumbs/([0-9a-f]{{64}})\.jpg", thumb)
        assert m, thumb
        body = s3_server.client().get_object(Bucket=dst, Key=f"thumbs/{m.group(1)}.jpg")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == m.group(1)  # content-addressed
        assert Image.open(io.BytesIO(body)).size == (32, 16)
    puts = len(requests(s3_server, "PUT", "/thumbs/"))
    assert puts == 2
    # the same source again: the same thumbnail, which is not uploaded a second time
    db.execute("INSERT INTO ml.images (image) VALUES (%s)", (f"s3://{src}/a.jpg",))
    again = db.execute('SELECT thumbnail FROM pxt_data."ml.images" ORDER BY _pxt_rowid DESC LIMIT 1').fetchone()[0]
    assert again == rows[0][1]
    assert len(requests(s3_server, "PUT", "/thumbs/")) == puts
    # reading a thumbnail back needs no request: this server wrote it (content-addressed, cached)
    before = len(s3_server.requests)
    assert db.execute('SELECT pxt.width(thumbnail) FROM pxt_data."ml.images" ORDER BY _pxt_rowid LIMIT 1').fetchone()[0] == 32
    assert len(s3_server.requests) == before
    desc = db.execute("SELECT destination FROM pxt.column_defs WHERE name = 'thumbnail'").fetchone()[0]
    assert desc == f"s3://{dst}/thumbs/"


def test_destination_default_from_the_setting_and_checked_at_ddl_time(db, s3_server, buckets):
    src, dst = buckets
    s3_server.put_object(src, "a.jpg", jpeg())
    images_table(db)
    db.execute("INSERT INTO ml.images (image) VALUES (%s)", (f"s3://{src}/a.jpg",))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"outside pixelgres.allowed_buckets"):
        db.execute("SELECT pxt.add_computed_column('ml.images', 'bad', 'pxt.resize(image, 8, 8)', "
                   "destination => %s)", (f"s3://{dst}/elsewhere/",))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"destination applies to media columns"):
        db.execute("SELECT pxt.add_computed_column('ml.images', 'w', 'pxt.width(image)', destination => %s)",
                   (f"s3://{dst}/thumbs/",))
    assert db.execute("SELECT count(*) FROM pxt.column_defs WHERE name IN ('bad', 'w')").fetchone()[0] == 0
    db.execute("SELECT set_config('pixelgres.media_destination', %s, false)", (f"s3://{dst}/thumbs/small",))
    db.execute("SELECT pxt.add_computed_column('ml.images', 'small', 'pxt.resize(image, 8, 8)')")
    db.execute("SELECT pxt.add_computed_column('ml.images', 'w', 'pxt.width(image)')")  # not media: the default does not apply
    small, w = db.execute("SELECT small, w FROM ml.images").fetchone()
    assert small.startswith(f"s3://{dst}/thumbs/small/") and w == 64


@pytest.mark.parametrize("case", ["missing", "outside", "invalid"])
def test_bad_bucket_uri_is_a_clear_error_naming_row_and_column(db, s3_server, buckets, case):
    src, _ = buckets
    s3_server.put_object(src, "ok.jpg", jpeg())
    images_table(db)
    db.execute("INSERT INTO ml.images (image) VALUES (%s)", (f"s3://{src}/ok.jpg",))
    uri, why = {"missing": (f"s3://{src}/nope.jpg", "no such object"),
                "outside": ("s3://someone-elses/a.jpg", "outside pixelgres.allowed_buckets"),
                "invalid": (f"s3://{src}/a/../b.jpg", "a '..' segment")}[case]
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        db.execute("INSERT INTO ml.images (image) VALUES (%s)", (uri,))
    msg = str(e.value)
    assert "column image of ml.images, row _pxt_rowid=" in msg and why in msg, msg
    assert SECRET_KEY not in msg and "Traceback" not in msg
    assert db.execute("SELECT count(*) FROM ml.images").fetchone()[0] == 1  # backend alive, other rows intact


def test_per_row_errors_with_on_error_ignore(db, s3_server, buckets):
    """A computed column over bucket media records a missing object as that row's error."""
    src, dst = buckets
    s3_server.put_object(src, "a.jpg", jpeg())
    db.execute("SELECT pxt.create_table('t', '{\"ref\": \"string\"}')")
    db.execute("SELECT pxt.add_computed_column('t', 'w', 'pxt.width(ref::pxt.image)', on_error => 'ignore')")
    db.execute("INSERT INTO t (ref) VALUES (%s), (%s), (%s)",
               (f"s3://{src}/a.jpg", f"s3://{src}/missing.jpg", f"s3://{src}/a.jpg"))
    rows = db.execute('SELECT w, _pxt_errors FROM pxt_data."public.t" ORDER BY _pxt_rowid').fetchall()
    assert [r[0] for r in rows] == [64, None, 64]
    assert "no such object" in rows[1][1]["w"]["message"]


def test_throttling_is_retried(db, s3_server, buckets, virtual_clock):
    src, _ = buckets
    s3_server.put_object(src, "a.jpg", jpeg())
    s3_server.fail(503, "SlowDown", times=2, method="GET")
    assert db.execute("SELECT pxt.width(%s::pxt.image)", (f"s3://{src}/a.jpg",)).fetchone()[0] == 64
    gets = [r.status for r in requests(s3_server, "GET", "a.jpg")]
    assert gets == [503, 503, 200]
    assert [e["what"] for e in virtual_clock.events()].count("sleep") == 2


def test_throttling_beyond_the_retries_is_an_error(db, s3_server, buckets, virtual_clock):
    src, _ = buckets
    s3_server.put_object(src, "a.jpg", jpeg())
    s3_server.fail(503, "SlowDown", times=None, method="HEAD")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="throttl"):
        db.execute("SELECT pxt.width(%s::pxt.image)", (f"s3://{src}/a.jpg",))
    assert len(requests(s3_server, "HEAD", "a.jpg")) == 3  # the first try and retries = 2
    assert db.execute("SELECT 1").fetchone() == (1,)


def test_too_large_is_refused_before_any_download(db, s3_server, buckets):
    src, _ = buckets
    s3_server.put_object(src, "big.mp4", b"\0" * (1024 * 1024 + 1))
    db.execute("SET pixelgres.max_media_mb = 1")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="more than the limit.*pixelgres.max_media_mb"):
        db.execute("SELECT pxt.video_info(%s::pxt.video)", (f"s3://{src}/big.mp4",))
    assert requests(s3_server, "GET", "big.mp4") == []


def test_access_denied(db, s3_server, buckets, tmp_path):
    src, _ = buckets
    s3_server.put_object(src, "a.jpg", jpeg())
    akid, secret = s3_server.iam_user(f"deny-{src}", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::nothing-here/*"}]})
    cfg = write_config(tmp_path / "denied.toml", s3_server, access_key=akid, secret_key=secret)
    db.execute("SELECT set_config('pixelgres.storage_config', %s, false)", (str(cfg),))
    with s3_server.iam_enforced():
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="denied") as e:
            db.execute("SELECT pxt.width(%s::pxt.image)", (f"s3://{src}/a.jpg",))
    assert secret not in str(e.value) and akid not in str(e.value)


def test_timeout_is_an_error_and_the_backend_lives(db, s3_server, buckets, tmp_path):
    src, _ = buckets
    s3_server.put_object(src, "slow.jpg", jpeg())
    cfg = write_config(tmp_path / "slow.toml", s3_server, extra='read_timeout = "1s"\n')
    cfg.write_text(cfg.read_text().replace("retries = 2", "retries = 0"))
    db.execute("SELECT set_config('pixelgres.storage_config', %s, false)", (str(cfg),))
    s3_server.hang(times=1, method="HEAD")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="time"):
        db.execute("SELECT pxt.width(%s::pxt.image)", (f"s3://{src}/slow.jpg",))
    assert db.execute("SELECT pxt.width(%s::pxt.image)", (f"s3://{src}/slow.jpg",)).fetchone()[0] == 64


def test_video_from_a_bucket(db, s3_server, buckets, tmp_path):
    src, _ = buckets
    grey_video(tmp_path / "v.mp4", 12)
    s3_server.put_object(src, "clips/v.mp4", (tmp_path / "v.mp4").read_bytes())
    db.execute("SELECT pxt.create_table('ml.videos', '{\"video\": \"video\"}')")
    db.execute("INSERT INTO ml.videos (video) VALUES (%s)", (f"s3://{src}/clips/v.mp4",))
    info = db.execute("SELECT pxt.video_info(video) FROM ml.videos").fetchone()[0]
    assert (info["width"], info["height"], info["frames"]) == (64, 48, 12)
    db.execute("SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video)')")
    assert db.execute("SELECT count(*) FROM ml.frames").fetchone()[0] == 12
    assert len(requests(s3_server, "GET", "v.mp4")) == 1  # the check, info and frames share one download


def test_prefetch_reports_per_uri(db, s3_server, buckets):
    src, _ = buckets
    for i in range(5):
        s3_server.put_object(src, f"p{i}.jpg", jpeg(size=(8 + i, 8)))
    uris = [f"s3://{src}/p{i}.jpg" for i in range(5)] + [f"s3://{src}/gone.jpg", "s3://other-bucket/x.jpg",
                                                          "/not/an/object"]
    got = dict(db.execute("SELECT uri, error FROM pxt.prefetch_media(%s)", (uris,)).fetchall())
    assert set(got) == set(uris[:7])
    assert all(got[u] is None for u in uris[:5])
    assert "no such object" in got[uris[5]] and "allowed_buckets" in got[uris[6]]
    before = len(requests(s3_server, "GET"))
    assert [db.execute("SELECT pxt.width(%s::pxt.image)", (u,)).fetchone()[0] for u in uris[:5]] == [8, 9, 10, 11, 12]
    assert len(requests(s3_server, "GET")) == before


def test_allowed_buckets_is_superuser_only(db, dsn):
    db.execute("CREATE ROLE bucket_user LOGIN")
    db.execute("GRANT pxt_user TO bucket_user")
    with psycopg.connect(dsn, user="bucket_user", autocommit=True) as c:
        for guc in ("pixelgres.allowed_buckets", "pixelgres.storage_config", "pixelgres.object_cache_dir"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(f"SET {guc} = 's3://x/'")
    db.execute("DROP ROLE bucket_user")


def test_per_role_allow_list(db, dsn, s3_server, buckets, tmp_path):
    """ALTER ROLE ... SET (by a superuser) gives one role its own buckets."""
    src, _ = buckets
    s3_server.put_object(src, "a.jpg", jpeg())
    cfg = db.execute("SHOW pixelgres.storage_config").fetchone()[0]
    db.execute("CREATE ROLE reader_a LOGIN")
    db.execute("GRANT pxt_user TO reader_a")
    db.execute(f"ALTER ROLE reader_a SET pixelgres.storage_config = '{cfg}'")
    db.execute(f"ALTER ROLE reader_a SET pixelgres.object_cache_dir = '{tmp_path / 'cache'}'")
    db.execute("ALTER ROLE reader_a SET pixelgres.allowed_buckets = ''")  # over the database's setting
    try:
        with psycopg.connect(dsn, user="reader_a", autocommit=True) as c:
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="allowed_buckets"):
                c.execute("SELECT pxt.width(%s::pxt.image)", (f"s3://{src}/a.jpg",))
        db.execute(f"ALTER ROLE reader_a SET pixelgres.allowed_buckets = 's3://{src}/'")
        with psycopg.connect(dsn, user="reader_a", autocommit=True) as c:
            assert c.execute("SELECT pxt.width(%s::pxt.image)", (f"s3://{src}/a.jpg",)).fetchone()[0] == 64
            assert SECRET_KEY not in json.dumps(c.execute("SHOW ALL").fetchall())
    finally:
        db.execute("DROP OWNED BY reader_a")
        db.execute("DROP ROLE reader_a")


def test_revert_and_vacuum_keep_what_a_version_references(db, s3_server, buckets):
    src, dst = buckets
    s3_server.put_object(src, "a.jpg", jpeg((255, 0, 0), size=(40, 40)))
    s3_server.put_object(src, "b.jpg", jpeg((0, 0, 255), size=(40, 40)))
    images_table(db)
    db.execute("SELECT pxt.add_computed_column('ml.images', 'thumb', 'pxt.resize(image, 8, 8)', destination => %s)",
               (f"s3://{dst}/thumbs/",))
    db.execute("INSERT INTO ml.images (image) VALUES (%s)", (f"s3://{src}/a.jpg",))
    thumb_a = db.execute("SELECT thumb FROM ml.images").fetchone()[0]
    db.execute("UPDATE ml.images SET image = %s", (f"s3://{src}/b.jpg",))
    thumb_b = db.execute("SELECT thumb FROM ml.images").fetchone()[0]
    assert thumb_a != thumb_b
    orphan = hashlib.sha256(b"nobody").hexdigest() + ".jpg"
    s3_server.put_object(dst, f"thumbs/{orphan}", b"nobody")
    s3_server.put_object(dst, "thumbs/notes.txt", b"not ours")  # not a content-addressed name: never touched

    def keys():
        return {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=dst).get("Contents", [])}

    dry = db.execute("SELECT pxt.vacuum_media(min_age => '0 s', dry_run => true)").fetchone()[0]
    assert (dry["objects"], dry["objects_deleted"]) == (3, 1) and f"thumbs/{orphan}" in keys()
    r = db.execute("SELECT pxt.vacuum_media(min_age => '0 s')").fetchone()[0]
    assert r["objects_deleted"] == 1 and r["destinations_skipped"] == []
    name = lambda u: u.split("/", 3)[3]  # noqa: E731
    assert keys() == {name(thumb_a), name(thumb_b), "thumbs/notes.txt"}  # a is in the history
    db.execute("SELECT pxt.revert('ml.images')")
    assert db.execute("SELECT thumb, pxt.width(thumb) FROM ml.images").fetchone() == (thumb_a, 8)
    db.execute("SELECT pxt.vacuum_history('ml.images', keep => 1)")
    db.execute("SELECT pxt.vacuum_media(min_age => '0 s')")
    assert keys() == {name(thumb_a), "thumbs/notes.txt"}
    # recomputing b's thumbnail uploads it again (the cache forgot the deleted object)
    db.execute("UPDATE ml.images SET image = %s", (f"s3://{src}/b.jpg",))
    assert name(db.execute("SELECT thumb FROM ml.images").fetchone()[0]) in keys()


def test_readme_object_storage_section_runs(db, s3_server, buckets):
    """The README's "Object storage" SQL runs as written, on moto's buckets."""
    import tomllib

    from test_readme import README, sql_blocks, statements

    src, dst = buckets
    for name in ("a", "b"):
        s3_server.put_object(src, f"2024/{name}.jpg", jpeg(size=(320, 240)))
    text = README.read_text()
    toml_block = re.findall(r"```toml\n(.*?)```", text[text.index("## Object storage"):], flags=re.S)[0]
    assert set(tomllib.loads(toml_block)) == {"s3://", "s3://photos/"}
    setup, block = sql_blocks("## Object storage")[:2]
    assert "pixelgres.allowed_buckets" in setup and "pixelgres.storage_config" in setup  # the fixture's settings
    results = []
    for stmt in statements(block):
        stmt = (stmt.replace("s3://photos/", f"s3://{src}/").replace("s3://derived/thumbs/", f"s3://{dst}/thumbs/")
                .replace("s3://exports/", f"s3://{dst}/exports/"))
        cur = db.execute(stmt)
        results.append(cur.fetchall() if cur.description else None)
    rows = results[3]
    assert [r[2] for r in rows] == [256, 256] and all(r[1].startswith(f"s3://{dst}/thumbs/") for r in rows)
    assert results[4][0][0]["rows"] == 2 and results[5] == [(2,)]
    assert db.execute("SELECT count(*), count(DISTINCT thumbnail) FROM ml.images").fetchone() == (4, 1)
    assert results[6] == [(f"s3://{src}/2024/a.jpg", None)]
    assert results[7][0][0]["objects"] == 1  # all thumbnails are the same bytes: one object


def test_media_validation_on_read(db, s3_server, buckets, tmp_path, dsn):
    """A column that skips the insert's check: a fake file goes in, and the first read names it."""
    src, _ = buckets
    s3_server.put_object(src, "fake.mp4", b"this is a text file, not a video\n" * 40)
    db.execute("SELECT pxt.create_table('ml.clips', '{\"video\": \"video\", \"n\": \"int\"}')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid video in column video.*not a decodable video"):
        db.execute("INSERT INTO ml.clips (video) VALUES (%s)", (f"s3://{src}/fake.mp4",))
    assert db.execute("SELECT pxt.set_media_validation('ml.clips', 'video', 'on_read')").fetchone() == ("on_read",)
    s3_server.reset()
    db.execute("INSERT INTO ml.clips (video) VALUES (%s)", (f"s3://{src}/fake.mp4",))
    assert requests(s3_server, "GET", "fake.mp4") == []  # not even downloaded
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="not a decodable video: 's3://"):
        db.execute("SELECT pxt.video_info(video) FROM ml.clips")
    with pytest.raises(psycopg.errors.WrongObjectType, match="'n' is not a media input column"):
        db.execute("SELECT pxt.set_media_validation('ml.clips', 'n', 'on_read')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="on_write' or 'on_read'"):
        db.execute("SELECT pxt.set_media_validation('ml.clips', 'video', 'never')")
    import pixelgres as pxt

    s = pxt.init(dsn)
    try:
        t = pxt.create_table("lazy", {"video": pxt.Video}, media_validation="on_read")
        t.insert([{"video": f"s3://{src}/fake.mp4"}])
        assert t.count() == 1
    finally:
        s.close()


def test_a_statements_uploads_run_concurrently_and_finish_before_it_ends(db, dsn, s3_server, buckets):
    """Four rows' thumbnails are all being uploaded at once (held at the proxy until all four
    arrived: one PUT at a time would never get there), and the INSERT ends only after them."""
    import threading

    src, dst = buckets
    for i in range(4):
        s3_server.put_object(src, f"c{i}.jpg", jpeg((60 * i, 0, 0), size=(32, 32)))
    images_table(db)
    db.execute("SELECT pxt.add_computed_column('ml.images', 'thumb', 'pxt.resize(image, 8, 8)', destination => %s)",
               (f"s3://{dst}/thumbs/",))
    s3_server.hold(times=None, method="PUT")
    done = threading.Event()

    def insert():
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("INSERT INTO ml.images (image) SELECT unnest(%s::text[])",
                      ([f"s3://{src}/c{i}.jpg" for i in range(4)],))
        done.set()
    t = threading.Thread(target=insert)
    t.start()
    try:
        s3_server.wait_for(4, "PUT", "/thumbs/")
        assert not done.is_set()  # the statement waits for its uploads
    finally:
        s3_server.release()
        t.join(60)
    assert done.is_set()
    for (thumb,) in db.execute("SELECT thumb FROM ml.images").fetchall():
        s3_server.client().head_object(Bucket=dst, Key=thumb.split("/", 3)[3])


def test_a_failed_upload_fails_the_statement(db, s3_server, buckets, virtual_clock):
    src, dst = buckets
    for i in range(3):
        s3_server.put_object(src, f"f{i}.jpg", jpeg((0, 60 * i, 0), size=(32, 32)))
    images_table(db)
    db.execute("SELECT pxt.add_computed_column('ml.images', 'thumb', 'pxt.resize(image, 8, 8)', destination => %s)",
               (f"s3://{dst}/thumbs/",))
    s3_server.fail(503, "SlowDown", times=None, method="PUT")
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        db.execute("INSERT INTO ml.images (image) SELECT unnest(%s::text[])", ([f"s3://{src}/f{i}.jpg" for i in range(3)],))
    msg = str(e.value)
    assert re.search(rf"uploading s3://{dst}/thumbs/[0-9a-f]{{64}}\.jpg \(column thumb\) failed: .*throttl", msg), msg
    assert db.execute("SELECT count(*) FROM ml.images").fetchone()[0] == 0  # nothing half-written
    s3_server.reset()
    db.execute("INSERT INTO ml.images (image) SELECT unnest(%s::text[])", ([f"s3://{src}/f{i}.jpg" for i in range(3)],))
    assert db.execute("SELECT count(*) FROM ml.images WHERE thumb LIKE 's3://%%'").fetchone()[0] == 3


def test_the_longest_prefix_of_the_storage_config_applies(db, s3_server, buckets, tmp_path):
    """["s3://"] points nowhere (a closed port); ["s3://<src>/"] at moto: only the longer one works."""
    src, _ = buckets
    s3_server.put_object(src, "a.jpg", jpeg())
    good = write_config(tmp_path / "good.toml", s3_server).read_text().replace('["s3://"]', f'["s3://{src}/"]')
    cfg = tmp_path / "prefixes.toml"
    cfg.write_text('["s3://"]\nendpoint = "http://127.0.0.1:1"\nallow_http = true\nretries = 0\n'
                   'connect_timeout = "1s"\n\n' + good)
    cfg.chmod(0o644)
    db.execute("SELECT set_config('pixelgres.storage_config', %s, false)", (str(cfg),))
    assert db.execute("SELECT pxt.width(%s::pxt.image)", (f"s3://{src}/a.jpg",)).fetchone()[0] == 64
    db.execute("SELECT set_config('pixelgres.allowed_buckets', %s, false)", (f"s3://{src}/,s3://other-{src}/",))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"s3://other-{src}/a.jpg"):
        db.execute("SELECT pxt.width(%s::pxt.image)", (f"s3://other-{src}/a.jpg",))
    cfg.write_text('["s3://"]\nsecret_access_key = [1, 2]\n')  # a broken file: named, never quoted
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="storage_config") as e:
        db.execute("SELECT pxt.width(%s::pxt.image)", (f"s3://{src}/a.jpg",))
    assert "[1, 2]" not in str(e.value)


def test_audio_and_documents_from_a_bucket(db, s3_server, buckets, tmp_path):
    """Audio and documents are checked on insert and read through the cache like images."""
    import av
    import numpy as np
    import pypdf

    from pixelgres.testing.media import MARKDOWN

    src, _ = buckets
    wav = tmp_path / "tone.wav"
    with av.open(str(wav), "w") as out:
        st = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray((np.sin(np.arange(24000) / 5) * 8000).astype(np.int16).reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in [*st.encode(frame), *st.encode(None)]:
            out.mux(p)
    w = pypdf.PdfWriter()
    for _ in range(2):
        w.add_blank_page(width=200, height=200)
    pdf = io.BytesIO()
    w.write(pdf)
    s3_server.put_object(src, "a/tone.wav", wav.read_bytes())
    s3_server.put_object(src, "d/two.pdf", pdf.getvalue())
    s3_server.put_object(src, "d/notes.md", MARKDOWN.encode())
    s3_server.put_object(src, "d/fake.pdf", b"%PDF-1.4\nnot really")
    db.execute("SELECT pxt.create_table('ml.media', '{\"audio\": \"audio\", \"doc\": \"document\"}')")
    db.execute("INSERT INTO ml.media (audio, doc) VALUES (%s, %s), (NULL, %s)",
               (f"s3://{src}/a/tone.wav", f"s3://{src}/d/two.pdf", f"s3://{src}/d/notes.md"))
    segs = db.execute("SELECT count(*), max(end_time_sec) FROM ml.media, pxt.audio_splitter(audio, 1.0)").fetchone()
    assert segs == (3, 3.0)
    chunks = db.execute("SELECT count(*) FROM ml.media, pxt.document_splitter(doc, 'heading') "
                        "WHERE doc LIKE '%%.md'").fetchone()[0]
    assert chunks >= 2
    assert len(requests(s3_server, "GET", "tone.wav")) == 1 and len(requests(s3_server, "GET", "notes.md")) == 1
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"column doc of ml.media.*not a readable PDF"):
        db.execute("INSERT INTO ml.media (doc) VALUES (%s)", (f"s3://{src}/d/fake.pdf",))


def test_media_url_of_bucket_media_is_a_presigned_url_a_browser_can_open(db, s3_server, buckets):
    import urllib.request

    src, _ = buckets
    s3_server.put_object(src, "shown/a.jpg", jpeg(size=(40, 30)))
    url = db.execute("SELECT pxt.media_url(%s, interval '10 minutes')", (f"s3://{src}/shown/a.jpg",)).fetchone()[0]
    assert url.startswith(s3_server.endpoint + f"/{src}/shown/a.jpg?") and "X-Amz-Signature=" in url
    assert "X-Amz-Expires=600" in url and SECRET_KEY not in url
    with urllib.request.urlopen(url) as r:  # no credentials: the signature is the permission
        assert Image.open(io.BytesIO(r.read())).size == (40, 30)
    with pytest.raises(psycopg.Error, match="allowed_buckets"):  # the allow-list holds for links too
        db.execute("SELECT pxt.media_url('s3://elsewhere/x.jpg')")
