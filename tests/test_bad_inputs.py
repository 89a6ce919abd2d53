"""Bad-input catalogue (issue 9): hostile and broken inputs fail cleanly.

For every item the operation fails with a clear error that names the value and, in a table,
the column and the row (``_pxt_rowid``); the backend stays up (``SELECT 1`` on the same
connection afterwards); a failing multi-row INSERT inserts nothing and rows committed before
are unchanged. Items: corrupt, truncated, zero-byte and mistyped images and videos, a
30000x30000 PNG, missing files, ``..`` and symlink escapes, ``file:///etc/passwd``, URLs of
private / loopback / link-local / metadata addresses (refused at the address check, proven
without sending traffic: see ``no_traffic``), SQL-injection attempts through identifiers and
create_table schemas, malformed JSON paths, wrong argument types, invalid iterator arguments.
Bad image values given to functions and tables are pg_regress tests: test/sql/bad_media.sql
(and test/sql/media.sql, test/sql/iterators.sql).
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from pixelgres.testing.media import bomb_png, garble, grey_video

MEDIA = r"(?:plpy\.Error: )?MediaError: "


# --- media makers ---------------------------------------------------------------------------------
def png_bytes(size=(32, 24), colour=(200, 30, 30)) -> bytes:
    im = Image.new("RGB", size, colour)
    im.paste((20, 20, 220), (0, 0, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(size=(64, 48)) -> bytes:
    im = Image.new("RGB", size)
    im.putdata([((x * 4) % 256, (y * 5) % 256, 100) for y in range(size[1]) for x in range(size[0])])
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def mdat_payload(mp4: bytes) -> tuple[int, int]:
    """(start, end) of the mdat box's payload (the coded frames) in an MP4 file."""
    pos = 0
    while pos + 8 <= len(mp4):
        size, kind = struct.unpack(">I4s", mp4[pos:pos + 8])
        if kind == b"mdat":
            return pos + 8, pos + size
        pos += size
    raise AssertionError("no mdat box")


def make_video(path: Path, n: int = 10, faststart: bool = False) -> Path:
    """n frames of 32x24 H.264 at 10 fps (moov atom first with faststart, else last)."""
    return grey_video(path, n, 10, (32, 24), shade=lambda i: 20 * i, options={"g": "5"}, faststart=faststart)


def put(d: Path, name: str, data: bytes) -> str:
    p = d / name
    p.write_bytes(data)
    os.chmod(p, 0o644)
    return str(p)


@pytest.fixture
def outside():
    """A directory the server can read that is NOT under pixelgres.allowed_roots."""
    d = Path(tempfile.mkdtemp(prefix="pxt-outside-"))
    os.chmod(d, 0o755)
    put(d, "secret.png", png_bytes())
    put(d, "secret.mp4", make_video(d / "v.mp4").read_bytes())
    yield d
    shutil.rmtree(d, ignore_errors=True)


# --- checks ---------------------------------------------------------------------------------------
def expect_error(db, query: str, params, *patterns: str, sqlstate: str | None = None) -> str:
    """``query`` fails with a message matching every pattern; the same connection then works."""
    with pytest.raises(psycopg.Error) as ei:
        db.execute(query, params)
    msg = ei.value.diag.message_primary or str(ei.value)
    for p in patterns:
        assert re.search(p, msg), (p, msg)
    if sqlstate:
        assert ei.value.sqlstate == sqlstate, (ei.value.sqlstate, msg)
    assert db.execute("SELECT 1").fetchone() == (1,)
    return msg


def storage(db, table: str) -> str:
    """The relation holding a managed table's rows with its _pxt_* columns (pxt_data."schema.table");
    any other relation (e.g. an iterator view's storage, ml.frames_rows) is itself."""
    name = table if "." in table else f"public.{table}"
    row = db.execute("SELECT storage::text FROM pxt.list_tables() WHERE name = %s", (name,)).fetchone()
    return row[0] if row else table


def rows(db, table: str) -> list:
    return [r for (r,) in db.execute(f"SELECT to_jsonb(t) FROM {storage(db, table)} t ORDER BY _pxt_rowid")]


def last_rowid(db, table: str) -> int:
    seq = db.execute("SELECT pg_get_serial_sequence(%s, '_pxt_rowid')", (storage(db, table),)).fetchone()[0]
    value, called = db.execute(f"SELECT last_value, is_called FROM {seq}").fetchone()
    return value if called else 0


def assert_multirow_insert_refused(db, table: str, cols: str, good: tuple, bad: tuple, *patterns: str) -> int:
    """INSERT (good), (bad), (good) fails naming the bad row; the table is unchanged. Returns
    the bad row's _pxt_rowid."""
    before = rows(db, table)
    bad_id = last_rowid(db, table) + 2  # the statement's second row
    n = len(good)
    tup = "(" + ", ".join(["%s"] * n) + ")"
    msg = expect_error(db, f"INSERT INTO {table} ({cols}) VALUES {tup}, {tup}, {tup}", good + bad + good,
                       *[p.replace("{id}", str(bad_id)) for p in patterns])
    assert rows(db, table) == before, msg
    return bad_id


# --- images in a table --------------------------------------------------------------------------------
@pytest.fixture
def images(db, files):
    """ml.images with two computed columns and one committed row."""
    db.execute("""SELECT pxt.create_table('ml.images', '{"image": "image", "label": "string"}')""")
    db.execute("SELECT pxt.add_computed_column('ml.images', 'thumb', 'pxt.resize(image, 8, 8)')")
    db.execute("SELECT pxt.add_computed_column('ml.images', 'px', 'pxt.width(image) * pxt.height(image)')")
    good = put(files, "good.png", png_bytes())
    db.execute("INSERT INTO ml.images (image, label) VALUES (%s, 'committed')", (good,))
    assert db.execute("SELECT px FROM ml.images").fetchone() == (32 * 24,)
    return good


@pytest.mark.parametrize("on_error", ["abort", "ignore"])
def test_bad_image_bytes_in_a_computed_column(db, on_error):
    """An image computed from bytes: each bad input is that row's error, named with its
    column and row; with 'ignore' the good rows are computed and the bad ones recorded."""
    db.execute("""SELECT pxt.create_table('blobs', '{"name": "string", "data": "bytes"}')""")
    db.execute("SELECT pxt.add_computed_column('blobs', 'img', 'pxt.image_from_bytes(data)', on_error => %s)",
               (on_error,))
    db.execute("INSERT INTO blobs (name, data) VALUES ('committed', %s)", (png_bytes(),))
    committed = rows(db, "blobs")
    jpg = jpeg_bytes()
    bad = {"empty": (b"", r"empty image bytes"),
           "text": (b"just some text, no image", r"bytes are not a decodable image"),
           "truncated": (jpg[: len(jpg) // 2], r"bytes are not a decodable image: .*[Tt]runcated"),
           "30000x30000": (bomb_png(), r"image of 30000x30000 pixels exceeds pixelgres\.max_image_pixels")}
    if on_error == "abort":
        for name, (data, cause) in bad.items():
            assert_multirow_insert_refused(
                db, "blobs", "name, data", ("ok", png_bytes()), (name, data),
                r"^computed column img of public\.blobs failed for row \(_pxt_rowid={id}, data=E'\\\\x[0-9a-f]*'\): "
                + MEDIA + cause)
        assert rows(db, "blobs") == committed
        return
    db.execute("INSERT INTO blobs (name, data) VALUES " + ", ".join(["(%s, %s)"] * (len(bad) + 2)),
               ["ok1", png_bytes()] + [x for name, (data, _) in bad.items() for x in (name, data)] + ["ok2", jpg])
    assert rows(db, "blobs")[0] == committed[0]
    got = dict(db.execute("SELECT b.name, e.message FROM pxt.errors('blobs') e "
                          "JOIN pxt_data.\"public.blobs\" b ON b._pxt_rowid = e.rowid WHERE e.\"column\" = 'img'").fetchall())
    assert set(got) == set(bad)
    for name, (_, cause) in bad.items():
        assert re.search("^" + MEDIA + cause, got[name]), (name, got[name])
    assert db.execute('SELECT name FROM pxt_data."public.blobs" WHERE img IS NOT NULL ORDER BY _pxt_rowid').fetchall() == [
        ("committed",), ("ok1",), ("ok2",)]


# --- videos ----------------------------------------------------------------------------------------------
@pytest.fixture
def videos(db, files):
    """ml.videos with a computed column reading the video, and one committed row."""
    db.execute("""SELECT pxt.create_table('ml.videos', '{"video": "video", "title": "string"}')""")
    db.execute("SELECT pxt.add_computed_column('ml.videos', 'frames', '(pxt.video_info(video)->>''frames'')::int')")
    good = str(make_video(files / "good.mp4"))
    db.execute("INSERT INTO ml.videos (video, title) VALUES (%s, 'committed')", (good,))
    assert db.execute("SELECT frames FROM ml.videos").fetchone() == (10,)
    return good


def bad_video(kind: str, files: Path, outside: Path) -> tuple[str, str, str]:
    """(value, where it is refused: 'check' on insert / 'computed' by the column, cause)."""
    if kind == "zero-byte":
        return put(files, "empty.mp4", b""), "check", r"media file is empty \(0 bytes\): '.*/empty\.mp4'"
    if kind == "missing":
        return str(files / "gone.mp4"), "check", r"media file not found: '.*/gone\.mp4'"
    if kind == "dotdot-escape":
        return (f"{files}/{os.path.relpath(outside / 'secret.mp4', files)}", "check",
                r"'.*/secret\.mp4' is outside pixelgres\.allowed_roots")
    if kind == "symlink-escape":
        (files / "innocent.mp4").symlink_to(outside / "secret.mp4")
        return str(files / "innocent.mp4"), "check", r"'.*/innocent\.mp4' is outside pixelgres\.allowed_roots"
    if kind == "file-uri-passwd":
        return "file:///etc/passwd", "check", r"'file:///etc/passwd' is outside pixelgres\.allowed_roots"
    if kind == "text-as-mp4":
        return (put(files, "notes.mp4", b"this is a text file, not a video\n" * 40), "check",
                r"not a decodable video: '.*/notes\.mp4'")
    if kind == "truncated-faststart":  # index first: the cut is seen from the index
        data = make_video(files / "fs.mp4", faststart=True).read_bytes()
        return (put(files, "cut_fs.mp4", data[: len(data) * 6 // 10]), "computed",
                r"video '.*/cut_fs\.mp4' is truncated: its index needs \d+ bytes, the file has \d+")
    if kind == "truncated-index-last":  # the index at the end is gone
        data = make_video(files / "il.mp4").read_bytes()
        return (put(files, "cut_il.mp4", data[: len(data) * 6 // 10]), "check",
                r"not a decodable video: '.*/cut_il\.mp4'")
    if kind == "header-only":
        data = make_video(files / "h.mp4", faststart=True).read_bytes()
        return put(files, "head.mp4", data[:64]), "check", r"not a decodable video: '.*/head\.mp4'"
    raise AssertionError(kind)


BAD_VIDEOS = ["zero-byte", "missing", "dotdot-escape", "symlink-escape", "file-uri-passwd", "text-as-mp4",
              "truncated-faststart", "truncated-index-last", "header-only"]


@pytest.mark.parametrize("kind", BAD_VIDEOS)
def test_bad_video_in_a_table(db, files, outside, videos, kind):
    value, where, cause = bad_video(kind, files, outside)
    if where == "check":
        head = r"^invalid video in column video of ml\.videos, row _pxt_rowid={id}: " + MEDIA
    else:
        head = (r"^computed column frames of ml\.videos failed for row \(_pxt_rowid={id}, video='"
                + re.escape(value) + r"'\): " + MEDIA)
    committed = rows(db, "ml.videos")
    assert_multirow_insert_refused(db, "ml.videos", "video, title", (videos, "a"), (value, "b"), head + cause)
    expect_error(db, "UPDATE ml.videos SET video = %s", (value,), cause)
    assert rows(db, "ml.videos") == committed
    expect_error(db, "SELECT * FROM pxt.frame_iterator(%s)", (value,), "^" + MEDIA + cause, sqlstate="22023")


def test_corrupt_video_in_an_iterator_view(db, files, videos):
    """A video whose header is intact but whose frames are garbage: its info reads, its
    frames do not; the view's expansion names the base row, and the whole insert is undone."""
    data = make_video(files / "fs.mp4", faststart=True).read_bytes()
    start, end = mdat_payload(data)
    bad = put(files, "garbage.mp4", garble(data, start, end - start))
    assert db.execute("SELECT (pxt.video_info(%s)->>'frames')::int", (bad,)).fetchone() == (10,)
    db.execute("SELECT pxt.create_view('ml.frames', 'ml.videos', 'pxt.frame_iterator(video)')")
    base, frames = rows(db, "ml.videos"), rows(db, "ml.frames_rows")
    assert len(frames) == 10
    assert_multirow_insert_refused(
        db, "ml.videos", "video, title", (videos, "a"), (bad, "b"),
        r"^view ml\.frames: pxt\.frame_iterator\(video\) failed for row \(_pxt_rowid={id}, video='.*/garbage\.mp4'\) "
        r"of ml\.videos: " + MEDIA + r"video '.*/garbage\.mp4' does not decode")
    assert rows(db, "ml.videos") == base and rows(db, "ml.frames_rows") == frames


# --- URLs: the address check, without sending traffic ---------------------------------------------
NO_TRAFFIC = r'''
CREATE FUNCTION pg_temp.no_traffic(url text, fake_dns jsonb DEFAULT '{}') RETURNS text
LANGUAGE plpython3u AS $py$
# Fetch url through pxt.image_info with every way of opening a connection replaced by one that
# fails the test, and (for fake_dns names only) a resolver answering from fake_dns.
# Returns the error text, or 'no error'.
import json, socket
plpy.execute("SELECT pxt._boot()")
fake = json.loads(fake_dns)
real_getaddrinfo = socket.getaddrinfo

def refuse(*args, **kw):
    address = next((a for a in args if isinstance(a, tuple)), kw.get("address"))
    raise AssertionError(f"connection attempted to {address!r}")

def getaddrinfo(host, port, *args, **kw):
    if host in fake:
        ip = fake[host]
        if isinstance(ip, list):  # successive answers (DNS rebinding)
            ip = ip.pop(0) if len(ip) > 1 else ip[0]
        if ":" in ip:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port or 0, 0, 0))]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port or 0))]
    return real_getaddrinfo(host, port, *args, **kw)

saved = (socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo)
socket.socket.connect = socket.socket.connect_ex = socket.create_connection = refuse
socket.getaddrinfo = getaddrinfo
try:
    plpy.execute(plpy.prepare("SELECT pxt.image_info($1)", ["text"]), [url])
    return "no error"
except plpy.SPIError as e:
    return str(e.args[0] if e.args else e)
finally:
    socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo = saved
$py$;
'''


@pytest.fixture
def no_traffic(db):
    """no_traffic(url, fake_dns=None) -> the error pxt.image_info(url) gives, with the socket
    layer patched (inside the backend) to fail with 'connection attempted'."""
    db.execute(NO_TRAFFIC)

    def probe(url: str, fake_dns: dict | None = None) -> str:
        return db.execute("SELECT pg_temp.no_traffic(%s, %s)", (url, json.dumps(fake_dns or {}))).fetchone()[0]
    return probe


REFUSED = r"URL host '{host}' resolves to a non-public address \({ip}\); allow it with pixelgres\.allowed_url_hosts"


@pytest.mark.parametrize("url, host, ip, dns", [
    ("http://169.254.169.254/latest/meta-data/iam.png", "169.254.169.254", "169.254.169.254", None),  # cloud metadata
    ("http://100.100.100.200/latest/meta-data/x.png", "100.100.100.200", "100.100.100.200", None),  # shared space (Alibaba metadata)
    ("http://100.64.0.1/a.png", "100.64.0.1", "100.64.0.1", None),
    ("http://10.0.0.1/a.png", "10.0.0.1", "10.0.0.1", None),
    ("http://172.16.5.4/a.png", "172.16.5.4", "172.16.5.4", None),
    ("http://192.168.1.1/a.png", "192.168.1.1", "192.168.1.1", None),
    ("http://127.0.0.1:8080/a.png", "127.0.0.1", "127.0.0.1", None),
    ("https://127.1/a.png", "127.1", "127.0.0.1", None),                  # short form of loopback
    ("http://2130706433/a.png", "2130706433", "127.0.0.1", None),         # loopback as one number
    ("http://0.0.0.0/a.png", "0.0.0.0", "0.0.0.0", None),
    ("http://[::1]:8080/a.png", "::1", "::1", None),
    ("http://[fe80::1]/a.png", "fe80::1", "fe80::1", None),              # link-local
    ("http://[fd00:ec2::254]/a.png", "fd00:ec2::254", "fd00:ec2::254", None),  # AWS metadata over IPv6
    ("http://[::ffff:169.254.169.254]/a.png", "::ffff:169.254.169.254", "::ffff:a9fe:a9fe", None),
    ("http://localhost/a.png", "localhost", r"127\.0\.0\.1|::1", None),
    ("http://metadata.google.internal/computeMetadata/v1/x.png", "metadata.google.internal", "169.254.169.254",
     {"metadata.google.internal": "169.254.169.254"}),
    ("http://intranet.example/a.png", "intranet.example", "10.1.2.3", {"intranet.example": "10.1.2.3"}),
    ("http://v6.intranet.example/a.png", "v6.intranet.example", "fd12::3", {"v6.intranet.example": "fd12::3"}),
])
def test_non_public_addresses_are_refused_without_traffic(db, no_traffic, url, host, ip, dns):
    err = no_traffic(url, dns)
    assert "connection attempted" not in err, err
    pattern = REFUSED.format(host=re.escape(host), ip=ip if "|" in ip else re.escape(ip))
    assert re.search(pattern, err), err
    # the same URL as the video of a virtual frame reference
    err = no_traffic(f"pxt-frame:0:0:{url.replace('.png', '.mp4')}", dns)
    assert "connection attempted" not in err, err
    pattern = REFUSED.format(host=re.escape(host), ip=ip if "|" in ip else re.escape(ip))
    assert re.search(pattern, err), err
    assert db.execute("SELECT 1").fetchone() == (1,)


def test_dns_rebinding_cannot_switch_the_address(db, no_traffic):
    """The name resolves to a public address when checked, then to the metadata address: the
    connection goes to the checked address (the only lookup), never to the second answer."""
    err = no_traffic("http://rebind.example/a.png", {"rebind.example": ["93.184.216.34", "169.254.169.254"]})
    assert "connection attempted to ('93.184.216.34'" in err, err
    assert "169.254.169.254" not in err


def test_url_cache_does_not_outlive_an_allowance(db, http_server, images):
    port = http_server.server_address[1]
    url = f"http://127.0.0.1:{port}/{uuid.uuid4().hex}.png"
    db.execute("SET pixelgres.allowed_url_hosts = '127.0.0.1'")
    assert db.execute("SELECT pxt.width(%s)", (url,)).fetchone()[0] == 40
    db.execute("RESET pixelgres.allowed_url_hosts")
    expect_error(db, "SELECT pxt.width(%s)", (url,), "non-public address")  # the cached copy is not served


def test_the_no_traffic_probe_sees_a_connection(db, no_traffic):
    """The probe itself: a public address passes the check and reaches the (patched) connect,
    so a missing check would be seen; so does an explicitly allowed loopback address, while
    allowing one host or network does not allow the others."""
    assert "connection attempted" in no_traffic("http://public.example/a.png", {"public.example": "93.184.216.34"})
    db.execute("SET pixelgres.allowed_url_hosts = '127.0.0.1, 10.0.0.0/8'")
    assert "connection attempted" in no_traffic("http://127.0.0.1:9/a.png")
    assert "connection attempted" in no_traffic("http://10.20.30.40/a.png")
    for url, host in (("http://169.254.169.254/a.png", "169.254.169.254"), ("http://192.168.1.1/a.png", "192.168.1.1"),
                      ("http://[::1]/a.png", "::1")):
        err = no_traffic(url)
        assert re.search(REFUSED.format(host=re.escape(host), ip=re.escape(host)), err), err
    db.execute("RESET pixelgres.allowed_url_hosts")
    assert re.search(REFUSED.format(host="127.0.0.1", ip=r"127\.0\.0\.1"), no_traffic("http://127.0.0.1:9/a.png"))


@pytest.mark.parametrize("url, pattern", [
    ("ftp://example.com/a.png", r"unsupported media URI scheme in 'ftp://example\.com/a\.png'"),
    ("gopher://127.0.0.1:70/a.png", r"unsupported media URI scheme"),
    ("http:///a.png", r"unsupported URL 'http:///a\.png'"),
    ("file://fileserver.example/share/a.png", r"file URI with a remote host is not supported"),
])
def test_other_schemes_and_hostless_urls_are_refused(db, no_traffic, url, pattern):
    err = no_traffic(url)
    assert "connection attempted" not in err and re.search(pattern, err), err


class _Files(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.server.hits.append(self.path)
        data = png_bytes((40, 30))
        self.send_response(200)
        self.send_header("content-type", "image/png")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    s = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    s.hits = []
    t = threading.Thread(target=s.serve_forever, daemon=True)
    t.start()
    yield s
    s.shutdown()
    s.server_close()


def test_loopback_url_end_to_end(db, http_server, images):
    """A real loopback server: refused while loopback is not allowed (and nothing reaches it),
    fetched once pixelgres.allowed_url_hosts allows it."""
    port = http_server.server_address[1]
    committed = rows(db, "ml.images")
    for host in ("127.0.0.1", "localhost"):
        url = f"http://{host}:{port}/{uuid.uuid4().hex}.png"
        expect_error(db, "INSERT INTO ml.images (image, label) VALUES (%s, 'a'), (%s, 'b')", (images, url),
                     rf"^invalid image in column image of ml\.images, row _pxt_rowid=\d+: {MEDIA}"
                     rf"URL host '{host}' resolves to a non-public address \((127\.0\.0\.1|::1)\)")
        expect_error(db, "SELECT pxt.width(%s)", (url,), "non-public address")
    assert http_server.hits == []
    assert rows(db, "ml.images") == committed
    db.execute("SET pixelgres.allowed_url_hosts = '127.0.0.1'")
    url = f"http://127.0.0.1:{port}/{uuid.uuid4().hex}.png"
    db.execute("INSERT INTO ml.images (image, label) VALUES (%s, 'fetched')", (url,))
    assert db.execute("SELECT image, px FROM ml.images WHERE label = 'fetched'").fetchone() == (url, 40 * 30)
    assert len(http_server.hits) >= 1


# --- identifiers ----------------------------------------------------------------------------------------
INJECT = "DROP TABLE public.canary; --"


def quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


@pytest.fixture
def canary(db):
    db.execute("CREATE TABLE public.canary (x int)")
    db.execute("INSERT INTO public.canary VALUES (42)")

    def alive():
        assert db.execute("SELECT x FROM public.canary").fetchall() == [(42,)]
    return alive


def test_identifiers_with_quotes_and_semicolons_work_quoted(db, canary):
    """Names full of quotes and semicolons are names: everything works and nothing runs."""
    schema, table = f"s'; {INJECT}", f't"; {INJECT}'
    full = f"{quote(schema)}.{quote(table)}"
    c1, c2, c3 = f'a"; {INJECT}', f"b'); {INJECT}", "img; x"
    db.execute("SELECT pxt.create_table(%s, %s)", (full, json.dumps({c1: "int", c2: "string", c3: "image"})))
    canary()
    comp1, comp2 = f"d'); {INJECT}", f'e"; {INJECT}'
    db.execute("SELECT pxt.add_computed_column(%s, %s, %s)", (full, comp1, f"{quote(c1)} * 2"))
    db.execute("SELECT pxt.add_computed_column(%s, %s, %s, on_error => 'ignore')",
               (full, comp2, f"length({quote(c2)}) / ({quote(c1)} - 1)"))
    db.execute(f"INSERT INTO {full} ({quote(c1)}, {quote(c2)}) VALUES (1, 'xy'), (3, 'xyz')")
    got = db.execute(f"SELECT {quote(c1)}, {quote(comp1)}, {quote(comp2)} FROM {full} ORDER BY 1").fetchall()
    assert got == [(1, 2, None), (3, 6, 1)]
    errs = db.execute('SELECT "column", sqlstate FROM pxt.errors(%s)', (full,)).fetchall()
    assert errs == [(comp2, "22012")]
    # a failing row names the odd column and row without breaking the message
    with pytest.raises(psycopg.Error) as e:
        db.execute(f"INSERT INTO {full} ({quote(c3)}) VALUES ('/nonexistent.png')")
    assert f"invalid image in column {c3} of {full}, row _pxt_rowid=" in str(e.value)
    assert [r[0] for r in db.execute("SELECT name FROM pxt.columns(%s)", (full,))] == [c1, c2, c3, comp1, comp2]
    # versioning, snapshots, renames, drops, views: all quoted
    snap = quote(f"snap'; {INJECT}")
    db.execute("SELECT pxt.create_snapshot(%s, %s)", (snap, full))
    renamed = f'renamed"; {INJECT}'
    db.execute("SELECT pxt.rename_column(%s, %s, %s)", (full, c2, renamed))
    db.execute("SELECT pxt.add_column(%s, %s, 'int')", (full, f"z'; {INJECT}"))
    db.execute("SELECT pxt.drop_column(%s, %s)", (full, f"z'; {INJECT}"))
    db.execute(f"UPDATE {full} SET {quote(c1)} = 5 WHERE {quote(c1)} = 1")
    db.execute("SELECT pxt.revert(%s)", (full,))
    assert db.execute(f"SELECT {quote(c1)} FROM {full} ORDER BY 1").fetchall() == [(1,), (3,)]
    assert db.execute(f"SELECT count(*) FROM {snap}").fetchone() == (2,)
    view = quote(f"v'; {INJECT}")
    db.execute("SELECT pxt.create_view(%s, %s, %s)", (view, full, f"pxt.string_splitter({quote(renamed)})"))
    assert db.execute(f"SELECT count(*) FROM {view}").fetchone() == (2,)
    db.execute("SELECT pxt.recompute_columns(%s, ARRAY[%s])", (full, comp1))
    assert db.execute("SELECT count(*) FROM pxt.history(%s)", (full,)).fetchone()[0] > 3
    db.execute("SELECT pxt.drop_table(%s, force => true)", (full,))
    canary()


@pytest.mark.parametrize("name", [f"x; {INJECT}", 'bad"name', "a.b.c", "", "   ", f"x'); {INJECT}",
                                  f'"x"; {INJECT}', "ml.", ".t"])
def test_malformed_table_names_are_refused(db, canary, name):
    for q, args in (("SELECT pxt.create_table(%s, '{\"x\": \"int\"}')", (name,)),
                    ("SELECT pxt.add_computed_column(%s, 'c', 'x + 1')", (name,)),
                    ("SELECT pxt.drop_table(%s)", (name,)),
                    ("SELECT pxt.create_snapshot('snap', %s)", (name,))):
        expect_error(db, q, args, r"^(?:plpy\.Error: |PixelgresError: )?(table name must be a non-empty string|invalid table name "
                     + re.escape(repr(name)) + ": (string is not a valid identifier|expected table or schema\\.table))")
    canary()
    assert db.execute("SELECT count(*) FROM pxt.tables").fetchone() == (0,)


@pytest.mark.parametrize("name, pattern", [
    ("", r"invalid column name '': 1 to 63 bytes"),
    ("x" * 64, r"invalid column name 'x{64}': 1 to 63 bytes"),
    ("_pxt_rowid", r"names starting with _pxt_ are reserved"),
    ("_pxt_errors", r"names starting with _pxt_ are reserved"),
])
def test_invalid_column_names_are_refused(db, canary, name, pattern):
    db.execute("""SELECT pxt.create_table('t', '{"x": "int"}')""")
    expect_error(db, "SELECT pxt.create_table('t2', %s)", (json.dumps({name: "int"}),), pattern)
    expect_error(db, "SELECT pxt.add_computed_column('t', %s, 'x + 1')", (name,), pattern)
    expect_error(db, "SELECT pxt.add_column('t', %s, 'int')", (name,), pattern)
    assert db.execute("SELECT to_regclass('t2')").fetchone() == (None,)
    assert [r[0] for r in db.execute("SELECT name FROM pxt.columns('t')")] == ["x"]
    canary()


@pytest.mark.parametrize("expr, pattern", [
    (f"x); {INJECT}", r"';' is not allowed|unbalanced parentheses"),
    (f"x; {INJECT}", r"';' is not allowed"),
    ("x) FROM public.canary --", r"unbalanced parentheses|comments"),
    ("(SELECT max(x) FROM public.canary)", r"subqueries and statements are not allowed"),
    ("x /* DROP TABLE public.canary */", r"comments are not allowed"),
    ("$q$x$q$", r"not allowed in an expression"),
    ("E'\\x27'", r"not accepted in expressions"),
    ("x::text || (DROP TABLE public.canary)", r"subqueries and statements are not allowed"),
    ('"x"""', r"unterminated|does not exist"),
    ("public.canary.x", r"invalid expression|missing FROM-clause"),
])
def test_expressions_cannot_inject_sql(db, canary, expr, pattern):
    db.execute("""SELECT pxt.create_table('t', '{"x": "int"}')""")
    db.execute("INSERT INTO t (x) VALUES (1)")
    expect_error(db, "SELECT pxt.add_computed_column('t', 'c', %s)", (expr,), pattern)
    assert [r[0] for r in db.execute("SELECT name FROM pxt.columns('t')")] == ["x"]
    assert db.execute("SELECT x FROM t").fetchall() == [(1,)]
    canary()


# --- create_table schemas ----------------------------------------------------------------------------------
@pytest.mark.parametrize("schema, pattern", [
    ("[1, 2]", r"schema must be a JSON object of column name -> type"),
    ('"image"', r"schema must be a JSON object"),
    ("42", r"schema must be a JSON object"),
    ("null", r"schema must be a JSON object"),
    ('{"a": "nosuchtype"}', r"unknown column type 'nosuchtype'"),
    ('{"a": "int; DROP TABLE public.canary"}', r"unknown column type 'int; DROP TABLE public\.canary'"),
    ('{"a": "int) ; DROP TABLE public.canary; --"}', r"unknown column type"),
    ('{"a": "text COLLATE \\"C\\""}', r"unknown column type"),
    ('{"a": "int CHECK (false)"}', r"unknown column type"),
    ('{"a": "int(5"}', r"unknown column type 'int\(5'"),
    ('{"a": ""}', r"unknown column type ''"),
    ('{"a": 5}', r"column type must be a string, not 5"),
    ('{"a": null}', r"column type must be a string, not None"),
    ('{"a": {"type": "int"}}', r"column type must be a string"),
    ('{"a": ["int"]}', r"column type must be a string"),
    ('{"ok": "int", "b": "image; DROP TABLE public.canary"}', r"unknown column type"),
    ('{"a": "int", ', r"invalid input syntax for type json"),
])
def test_hostile_create_table_schemas_are_refused(db, canary, schema, pattern):
    expect_error(db, "SELECT pxt.create_table('hs', %s)", (schema,), pattern)
    assert db.execute("SELECT to_regclass('hs')").fetchone() == (None,)
    assert db.execute("SELECT count(*) FROM pxt.tables").fetchone() == (0,)
    canary()


# --- JSON paths ---------------------------------------------------------------------------------------------
@pytest.fixture
def docs(db):
    db.execute("""SELECT pxt.create_table('docs', '{"doc": "json", "path": "string"}')""")
    db.execute("""INSERT INTO docs (doc, path) VALUES ('{"a": {"b": 1}}', '$.a.b')""")
    return db


@pytest.mark.parametrize("expr, pattern", [
    ("doc->'a'->>", r"syntax error"),
    ("jsonb_path_query_first(doc, '$.a[')", r"syntax error at end of jsonpath input"),
    ("jsonb_path_query_first(doc, '$.a ? (@ ==')", r"syntax error at end of jsonpath input"),
    ("doc @? '$$$'", r"jsonpath"),
    ("doc #> '{a,b'", r"malformed array literal"),
    ("doc->>'a'->>'b'", r"operator does not exist: text ->> unknown"),
    ("jsonb_path_query_first(doc, '$.a', '{\"x\": ')", r"invalid input syntax for type json"),
])
def test_malformed_json_paths_are_refused_when_added(docs, expr, pattern):
    expect_error(docs, "SELECT pxt.add_computed_column('docs', 'c', %s)", (expr,),
                 r"^(?:plpy\.Error: |PixelgresError: )?invalid expression .*: .*" + pattern)
    assert [r[0] for r in docs.execute("SELECT name FROM pxt.columns('docs')")] == ["doc", "path"]


def test_json_path_errors_per_row_name_the_row_and_column(docs):
    db = docs
    db.execute("SELECT pxt.add_computed_column('docs', 'p', 'jsonb_path_query_first(doc, path::jsonpath)')")
    db.execute("SELECT pxt.add_computed_column('docs', 'n', '(doc #>> ''{a,b}'')::int + 1')")
    db.execute("SELECT pxt.add_computed_column('docs', 's', 'jsonb_path_query_first(doc, ''strict $.a.b.c'')', "
               "on_error => 'ignore')")
    committed = rows(db, "docs")
    assert db.execute("SELECT p, n FROM docs").fetchone() == (1, 2)
    # a malformed path in the data
    assert_multirow_insert_refused(
        db, "docs", "doc, path", ('{"a": {"b": 2}}', "$.a.b"), ('{"a": {"b": 3}}', "$.a["),
        r"^computed column p of public\.docs failed for row \(_pxt_rowid={id}, doc='\{\"a\": \{\"b\": 3\}\}', "
        r"path='\$\.a\['\): syntax error at end of jsonpath input")
    # a path that finds a value of the wrong type
    assert_multirow_insert_refused(
        db, "docs", "doc, path", ('{"a": {"b": 2}}', "$.a.b"), ('{"a": {"b": "two"}}', "$.a.b"),
        r"^computed column n of public\.docs failed for row \(_pxt_rowid={id}, doc='.*two.*'\): "
        r"invalid input syntax for type integer: \"two\"")
    assert rows(db, "docs") == committed
    # the 'ignore' column records its row's error (strict mode: a member of a number)
    assert db.execute("SELECT \"column\", message FROM pxt.errors('docs')").fetchall() == [
        ("s", "jsonpath member accessor can only be applied to an object")]


# --- wrong argument types -----------------------------------------------------------------------------------
INVALID = r"^(?:plpy\.Error: |PixelgresError: )?invalid expression .*: "


@pytest.mark.parametrize("expr, pattern", [
    ("pxt.resize(image, 'abc', 1)", INVALID + r'invalid input syntax for type integer: "abc"'),
    ("pxt.resize(image, 1.5, 2)", INVALID + r"function pxt\.resize\(pxt\.image, numeric, integer\) does not exist"),
    ("pxt.resize(image, 8)", INVALID + r"function pxt\.resize\(pxt\.image, integer\) does not exist"),
    ("pxt.resize(px, 8, 8)", INVALID + r"function pxt\.resize\(integer, integer, integer\) does not exist"),
    ("pxt.rotate(image, 'ninety')", INVALID + r'invalid input syntax for type double precision: "ninety"'),
    ("pxt.thumbnail(image, 8, 8, 8)", INVALID + r"function pxt\.thumbnail\(.*\) does not exist"),
    ("pxt.openai_chat_completions(label, 'm')",
     INVALID + r"function pxt\.openai_chat_completions\(text, unknown\) does not exist"),
    # text is accepted where an image goes (a media value is text): the row's value is refused
    ("pxt.resize(label, 8, 8)", r"^computed column c of ml\.images failed for row \(_pxt_rowid=1, label='committed'\): "
     + MEDIA + r"media path must be absolute: 'committed'"),
])
def test_wrong_argument_types(db, images, expr, pattern):
    committed = rows(db, "ml.images")
    expect_error(db, "SELECT pxt.add_computed_column('ml.images', 'c', %s)", (expr,), pattern)
    assert rows(db, "ml.images") == committed
    assert "c" not in [r[0] for r in db.execute("SELECT name FROM pxt.columns('ml.images')")]


def test_wrong_argument_values_per_row(db, files):
    """Sizes come from columns: a negative or zero one fails its row (naming it and its inputs),
    NULL gives NULL (the functions are STRICT), and 'ignore' records the bad rows only."""
    db.execute("""SELECT pxt.create_table('sized', '{"image": "image", "w": "int", "h": "int", "angle": "float"}')""")
    db.execute("SELECT pxt.add_computed_column('sized', 'r', 'pxt.resize(image, w::int, h::int)')")
    good = put(files, "g.png", png_bytes())
    db.execute("INSERT INTO sized (image, w, h) VALUES (%s, 4, 3), (%s, NULL, 3)", (good, good))
    committed = rows(db, "sized")
    widths = db.execute('SELECT pxt.width(r) FROM pxt_data."public.sized" ORDER BY _pxt_rowid').fetchall()
    assert widths == [(4,), (None,)]  # NULL width: NULL image, no error
    for w, h in ((-1, 3), (0, 3), (4, -7)):
        assert_multirow_insert_refused(
            db, "sized", "image, w, h", (good, 2, 2), (good, w, h),
            rf"^computed column r of public\.sized failed for row \(_pxt_rowid={{id}}, image='.*/g\.png', w='{w}', "
            rf"h='{h}'\): {MEDIA}resize to {w}x{h}: width and height must be positive")
    expect_error(db, "INSERT INTO sized (image, w, h) VALUES (%s, 3000000000, 1)", (good,),
                 r"^computed column r of public\.sized failed for row \(_pxt_rowid=\d+, .*w='3000000000'.*\): "
                 r"integer out of range")
    assert rows(db, "sized") == committed
    db.execute("SELECT pxt.add_computed_column('sized', 'rot', 'pxt.rotate(image, angle)', on_error => 'ignore')")
    db.execute("INSERT INTO sized (image, w, h, angle) VALUES "
               "(%s, 1, 1, 'NaN'), (%s, 1, 1, 90), (%s, 1, 1, 'Infinity')",
               (good, good, good))
    errs = db.execute("SELECT s.angle::text, e.message FROM pxt.errors('sized') e "
                      'JOIN pxt_data."public.sized" s ON s._pxt_rowid = e.rowid '
                      "ORDER BY 1").fetchall()
    assert [a for a, _ in errs] == ["Infinity", "NaN"]
    assert all(re.search(r"rotate by (nan|inf): the angle must be a finite number", m) for _, m in errs), errs
    assert db.execute("SELECT count(rot) FROM sized").fetchone() == (1,)


# --- iterator arguments ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, pattern", [
    ("fps => 0", r"fps must be > 0, not 0"),
    ("fps => -1", r"fps must be > 0"),
    ("fps => 'NaN'", r"fps must be > 0, not nan"),
    ("fps => 1, num_frames => 3", r"at most one of fps, num_frames and keyframes_only \(got fps and num_frames\)"),
    ("num_frames => 2, keyframes_only => true", r"at most one of .*\(got num_frames and keyframes_only\)"),
    ("num_frames => 0", r"num_frames must be >= 1"),
    ("format => 'gif'", r"frame format must be 'jpeg' or 'png'"),
])
def test_invalid_iterator_arguments(db, files, args, pattern):
    video = str(make_video(files / "v.mp4"))
    expect_error(db, f"SELECT * FROM pxt.frame_iterator(%s, {args})", (video,), pattern, sqlstate="22023")
    expect_error(db, "SELECT * FROM pxt.frame_iterator(%s, fps => 'fast')", (video,),
                 r'invalid input syntax for type double precision: "fast"')


def test_column_types_with_constraint_words_are_unknown_types(db):
    for bad in ("int NOT NULL", "int DEFAULT 1", "int PRIMARY KEY"):
        msg = expect_error(db, "SELECT pxt.create_table('ct', %s)", (json.dumps({"a": bad}),),
                           rf"column 'a': unknown column type '{bad}'")
        assert "to_regtype" not in msg


def test_media_limits_are_settings(db, files):
    """Video/audio duration, file size and PDF page limits refuse input before decoding it."""
    from reportlab.pdfgen import canvas
    path = grey_video(files / "two_s.mp4", 20, 10, (64, 48), shade=lambda i: 0)
    pdf = files / "three.pdf"
    c = canvas.Canvas(str(pdf))
    for i in range(3):
        c.drawString(72, 720, f"page {i + 1}")
        c.showPage()
    c.save()
    assert db.execute("SELECT count(*) FROM pxt.frame_iterator(%s)", (str(path),)).fetchone()[0] == 20
    db.execute("SET pixelgres.max_media_seconds = 1")
    expect_error(db, "SELECT count(*) FROM pxt.frame_iterator(%s)", (str(path),), r"more than pixelgres\.max_media_seconds")
    db.execute("RESET pixelgres.max_media_seconds")
    db.execute("SET pixelgres.max_document_pages = 2")
    expect_error(db, "SELECT count(*) FROM pxt.document_splitter(%s)", (str(pdf),), r"3 pages, more than pixelgres\.max_document_pages")
    db.execute("RESET pixelgres.max_document_pages")
    assert db.execute("SELECT count(*) FROM pxt.document_splitter(%s)", (str(pdf),)).fetchone()[0] >= 1
