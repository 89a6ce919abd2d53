"""pxt.media_url and the media server: signed, expiring links a BI tool or a browser opens.

The links themselves (server/media/links.py) and the WSGI application (media_server.py) are
checked in this process, with an injected clock for expiry; the SQL function signs links in
the backend, and a real media server on loopback serves them, Range requests included.
"""
import io
import os
import threading
import urllib.error
import urllib.request

import psycopg
import pytest
from PIL import Image
from werkzeug.test import Client

from conftest import set_for_database
from pixelgres.media_server import MediaApp, make_server
from pixelgres.server.media import links
from pixelgres.testing.media import grey_video

KEY = bytes(range(32))


def test_a_link_names_one_file_until_it_expires():
    token = links.sign(KEY, "/data/a.jpg", expires_at=1000)
    assert links.verify(KEY, token, now=999) == "/data/a.jpg"
    with pytest.raises(links.LinkError, match="expired") as e:
        links.verify(KEY, token, now=1000)
    assert e.value.status == 410
    payload, mac = token.split(".")
    forged = links.sign(KEY, "/etc/shadow", 1000).split(".")[0] + "." + mac  # another path, the old signature
    for bad in (forged, links.sign(bytes(32), "/data/a.jpg", 1000), payload, "", "x.y"):
        with pytest.raises(links.LinkError, match="not signed") as e:
            links.verify(KEY, bad, now=0)
        assert e.value.status == 403


def test_the_app_serves_verified_files_with_ranges(tmp_path):
    f = tmp_path / "clip.mp4"
    f.write_bytes(bytes(range(256)) * 8)
    now = [100.0]
    client = Client(MediaApp(KEY, now=lambda: now[0]))
    url = f"/m/{links.sign(KEY, str(f), 200)}/clip.mp4"
    r = client.get(url)
    assert r.status_code == 200 and r.data == f.read_bytes() and r.headers["Content-Type"] == "video/mp4"
    assert r.headers["Accept-Ranges"] == "bytes" and r.headers["X-Content-Type-Options"] == "nosniff"
    r = client.get(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.data == f.read_bytes()[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{f.stat().st_size}"
    assert client.head(url).status_code == 200
    assert client.post(url).status_code == 405
    assert client.get("/m/../../etc/passwd").status_code == 404
    assert client.get(f"/m/{links.sign(bytes(32), str(f), 200)}/clip.mp4").status_code == 403
    now[0] = 200.0
    assert client.get(url).status_code == 410
    now[0] = 100.0
    f.unlink()
    assert client.get(url).status_code == 404


@pytest.fixture
def media_server(server, db, dbname):
    """A media server on loopback with its key where the cluster's backends read it."""
    if server.cluster is None:
        pytest.skip("the key file must be on the suite's own cluster's machine (PIXELGRES_TEST_DSN is set)")
    key_file = server.cluster.sockdir / "test-media-url.key"
    key = links.new_key_file(str(key_file))
    st = os.stat(server.cluster.sockdir)
    if os.geteuid() == 0:
        os.chown(key_file, st.st_uid, st.st_gid)
    srv = make_server("127.0.0.1", 0, key)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_port}"
    set_for_database(db, dbname, {"pixelgres.media_url_base": base, "pixelgres.media_url_key_file": str(key_file)})
    yield base
    srv.shutdown()
    srv.server_close()


def fetch(url: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def media_table(db, files, table: str, size=(120, 90), frames: int = 8):
    """``table`` (name, image, video, thumb = a 32 px thumbnail) with one row 'r'; its files."""
    photo = files / f"{table}.png"
    Image.new("RGB", size, (10, 200, 10)).save(photo)
    photo.chmod(0o644)
    video = grey_video(files / f"{table}.mp4", frames)
    video.chmod(0o644)
    db.execute("SELECT pxt.create_table(%s, '{\"name\": \"string\", \"image\": \"image\", \"video\": \"video\"}')",
               (table,))
    db.execute("SELECT pxt.add_computed_column(%s, 'thumb', 'pxt.thumbnail(image, 32, 32)')", (table,))
    db.execute(f"INSERT INTO {table} (name, image, video) VALUES ('r', %s, %s)", (str(photo), str(video)))
    return photo, video


def test_media_url_links_open_in_the_media_server(db, dsn, media_server, files):
    photo, video = media_table(db, files, "ml.shown")
    image_url, thumb_url, video_url = db.execute(
        "SELECT pxt.media_url(image), pxt.media_url(thumb, interval '5 minutes'), pxt.media_url(video) "
        "FROM ml.shown").fetchone()
    assert all(u.startswith(media_server + "/m/") for u in (image_url, thumb_url, video_url))
    status, body, headers = fetch(image_url)
    assert status == 200 and body == photo.read_bytes() and headers["Content-Type"] == "image/png"
    status, body, _ = fetch(thumb_url)  # a derived media://<hash> value, from the media store
    assert status == 200 and max(Image.open(io.BytesIO(body)).size) == 32
    status, body, headers = fetch(video_url, {"Range": "bytes=0-99"})  # a browser's <video> seeks like this
    assert status == 206 and body == video.read_bytes()[:100]
    assert fetch(image_url.replace("/m/", "/m/x"))[0] == 403
    db.execute("CREATE ROLE mu_reader LOGIN IN ROLE pxt_reader")  # a BI tool's reader makes links too
    try:
        with psycopg.connect(dsn, user="mu_reader", autocommit=True) as bi:
            url = bi.execute("SELECT pxt.media_url(image) FROM ml.shown").fetchone()[0]
        assert fetch(url)[1] == photo.read_bytes()
    finally:
        db.execute("DROP ROLE mu_reader")


def test_media_url_checks_what_it_signs(db, media_server, files):
    assert db.execute("SELECT pxt.media_url('https://example.com/a.jpg')").fetchone()[0] == "https://example.com/a.jpg"
    assert db.execute("SELECT pxt.media_url(NULL)").fetchone()[0] is None
    with pytest.raises(psycopg.Error, match="outside pixelgres.allowed_roots"):
        db.execute("SELECT pxt.media_url('/etc/passwd')")  # only what the caller could read anyway
    with pytest.raises(psycopg.Error, match="media file not found"):
        db.execute("SELECT pxt.media_url(%s)", (str(files / "missing.png"),))
    for bad in ("0 seconds", "8 days", "-1 hour"):
        with pytest.raises(psycopg.Error, match="expires must be between 1 second and 7 days"):
            db.execute("SELECT pxt.media_url('https://example.com/a.jpg', %s::interval)", (bad,))


def test_without_a_media_server_local_links_say_how_to_start_one(db, dbname, files):
    p = files / "x.png"
    Image.new("RGB", (4, 4)).save(p)
    p.chmod(0o644)
    set_for_database(db, dbname, {"pixelgres.media_url_base": "", "pixelgres.media_url_key_file": ""})
    with pytest.raises(psycopg.Error, match="pixelgres media-server"):
        db.execute("SELECT pxt.media_url(%s)", (str(p),))


def test_readme_media_url_example_runs(db, media_server, files):
    import re
    from pathlib import Path

    media_table(db, files, "ml.images", size=(80, 60), frames=4)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    sql = re.findall(r"```sql\n(.*?)```", readme[readme.index("### Media in BI tools"):], flags=re.S)[0]
    name, thumb_url, clip = db.execute(sql.strip().rstrip(";")).fetchone()
    assert name == "r" and fetch(thumb_url)[0] == 200 and fetch(clip, {"Range": "bytes=0-9"})[0] == 206
