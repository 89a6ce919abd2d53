"""Object stores and their local cache, without a database (media/objects.py, media/cache.py).

The real code path runs against a real S3 API: moto in server mode behind the recording,
fault-injecting proxy of pixelgres.testing.s3_server, reached through obstore with an endpoint
override. What was requested, and how many bytes went out, is counted at the proxy; retries
wait on the virtual clock (core.clock), so nothing here sleeps or reads elapsed time.
"""
import multiprocessing
import os
import pickle
import signal
import threading

import pytest

from pixelgres.server.core import clock
from pixelgres.server.media import cache as mcache
from pixelgres.server.media import objects
from pixelgres.server.media.objects import ObjectStoreError, Settings, parse_uri
from pixelgres.testing.s3_server import s3_bucket, s3_server, s3_server_session  # noqa: F401
from pixelgres.testing.waits import wait_until

MB = 1 << 20


@pytest.fixture
def virtual_clock():
    c = clock.use_virtual_clock(5)
    yield c
    clock.use_real_clock()


@pytest.fixture
def st(s3_server):
    """Settings that reach moto through the proxy (retries wait on whatever clock is in use)."""
    return Settings(**s3_server.options(), retries=3)


def blob(n: int, seed: int = 0) -> bytes:
    period = bytes((i * 31 + seed) % 251 for i in range(251))
    return (period * (n // 251 + 1))[:n]


def sleeps(c) -> list[float]:
    return [e["seconds"] for e in c.events if e["what"] == "sleep"]


# --- URIs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("uri, scheme, bucket, key, account", [
    ("s3://photos/2024/a.jpg", "s3", "photos", "2024/a.jpg", None),
    ("gs://shots.example/b.png", "gs", "shots.example", "b.png", None),
    ("az://media-box/v/clip.mp4", "az", "media-box", "v/clip.mp4", None),
    ("abfs://media@acct01.dfs.core.windows.net/x/y.wav", "abfs", "media", "x/y.wav", "acct01"),
    ("abfss://media@acct01.dfs.core.windows.net/y.wav", "abfss", "media", "y.wav", "acct01"),
    ("r2://derived/thumbs/ab.png", "r2", "derived", "thumbs/ab.png", None),
    ("s3://photos/d\u00e9j\u00e0 vu/caf\u00e9 1.jpg", "s3", "photos", "d\u00e9j\u00e0 vu/caf\u00e9 1.jpg", None),
])
def test_parse_valid_uris(uri, scheme, bucket, key, account):
    u = parse_uri(uri)
    assert (u.scheme, u.bucket, u.key, u.account) == (scheme, bucket, key, account)
    assert str(u) == uri
    assert objects.is_object_uri(uri)


@pytest.mark.parametrize("uri, why", [
    ("s3://bkt/../etc/passwd", "'..'"),
    ("s3://bkt/a/../../b", "'..'"),
    ("s3://bkt/a/./b", "'.'"),
    ("s3://bkt/..", "'..'"),
    ("s3://bkt//a", "empty path segment"),
    ("s3://bkt/a//b", "empty path segment"),
    ("s3://bkt/a/", "empty path segment"),
    ("s3://bkt/", "no object key"),
    ("s3://bkt", "no object key"),
    ("s3:///key", "no bucket"),
    ("S3://bkt/a", "lower case"),
    ("s3://bkt/a\x00b", "control characters"),
    ("s3://bkt/a\nb", "control characters"),
    ("s3://bkt/a\u0085b", "control characters"),
    (" s3://bkt/a", "whitespace"),
    ("s3://bkt/a ", "whitespace"),
    ("s3://bkt/a?versionId=3", "query"),
    ("s3://bkt/a#frag", "query"),
    ("s3://bkt/%2e%2e/x", "percent-escapes"),
    ("s3://bkt/a%20b", "percent-escapes"),
    ("s3://bkt/a\\..\\b", "backslash"),
    ("s3://bkt:9000/a", "port"),
    ("s3://Bkt/a", "bucket name"),
    ("s3://ab/a", "bucket name"),
    ("s3://-bkt/a", "bucket name"),
    ("s3://b..kt/a", "bucket name"),
    ("s3://192.168.0.1/a", "bucket name"),
    ("s3://bkt/" + "k" * 1025, "longer than"),
    ("s3://bkt/e\u0301", "NFC"),
    ("ftp://bkt/a", "not an object URI"),
    ("/var/lib/a.jpg", "not an object URI"),
    ("http://example.com/a.jpg", "not an object URI"),
    (b"s3://bkt/a", "must be text"),
    (None, "must be text"),
    ("abfs://container/key", "container@account"),
    ("abfs://c0nt@evil.example.com/key", "container@account"),
    ("abfs://c0nt@acct.dfs.core.windows.net.evil.com/key", "container@account"),
    ("az://Media/x", "bucket name"),
    ("az://a--b/x", "bucket name"),
    ("gs://x/y", "bucket name"),
])
def test_parse_refuses_hostile_and_non_normal_uris(uri, why):
    with pytest.raises(ObjectStoreError) as ei:
        parse_uri(uri)
    assert ei.value.kind == "invalid"
    assert why in ei.value.message


def test_prefixes_allow_an_empty_key_or_a_trailing_slash():
    assert parse_uri("s3://bkt/", prefix=True).key == ""
    assert parse_uri("s3://bkt", prefix=True).key == ""
    assert parse_uri("s3://bkt/a/b/", prefix=True).key == "a/b/"
    for bad in ("s3://bkt/a//", "s3://bkt//", "s3://bkt/../"):
        with pytest.raises(ObjectStoreError):
            parse_uri(bad, prefix=True)


def test_credentials_in_a_uri_never_reach_the_message():
    for uri in ("s3://AKIAEXAMPLE:s3cr3tKEY@bkt/a.jpg", "az://box/a.jpg?sv=2024&sig=s3cr3tKEY",
                "abfs://user:s3cr3tKEY@acct.dfs.core.windows.net/a", "s3://bkt/a.jpg#s3cr3tKEY"):
        with pytest.raises(ObjectStoreError) as ei:
            parse_uri(uri)
        assert "s3cr3tKEY" not in str(ei.value) and "AKIAEXAMPLE" not in str(ei.value)
        assert "<redacted>" in str(ei.value)


def test_display_escapes_and_truncates():
    assert objects.display("s3://bkt/a\x1b[2Jb") == "s3://bkt/a\\x1b[2Jb"
    long = objects.display("s3://bkt/" + "x" * 500)
    assert len(long) == 200 and long.endswith("\u2026")


def test_error_pickles_with_its_fields():
    e = ObjectStoreError("s3://bkt/a", "throttled", "slow down", status=503, retryable=True)
    f = pickle.loads(pickle.dumps(e))
    assert (f.uri, f.kind, f.message, f.status, f.retryable, str(f)) == (
        "s3://bkt/a", "throttled", "slow down", 503, True, "s3://bkt/a: slow down")


def test_classify_reads_status_and_code_but_never_the_text():
    from obstore import exceptions as ox

    leaky = ("Generic S3 error: Error performing GET https://acct.blob.core.windows.net/box/a?sig=s3cr3tKEY "
             "- Server returned non-2xx status code: 503 Service Unavailable: <Code>SlowDown</Code> "
             "Authorization: AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE")
    e = objects.classify("az://box/a", ox.GenericError(leaky))
    assert (e.kind, e.status, e.retryable) == ("throttled", 503, True)
    assert str(e) == "az://box/a: the store is throttling requests (HTTP 503 SlowDown)"
    assert objects.classify("s3://b/k", ox.GenericError("HttpError { kind: Timeout }")).kind == "timeout"
    assert objects.classify("s3://b/k", ox.PermissionDeniedError("x")).kind == "denied"
    assert objects.classify("s3://b/k", FileNotFoundError("x")).kind == "not_found"
    assert objects.classify("s3://b/k", ox.GenericError("status code: 500")).retryable


# --- settings and credentials -------------------------------------------------------------------
def test_settings_are_hashable_and_hide_credentials():
    a = Settings(region="eu-west-1", credentials={"secret_access_key": "s3cr3tKEY", "access_key_id": "AK"})
    b = Settings(region="eu-west-1", credentials={"access_key_id": "AK", "secret_access_key": "s3cr3tKEY"})
    assert a == b and hash(a) == hash(b)
    assert "s3cr3tKEY" not in repr(a) and "AK" not in repr(a)
    assert dict(a.credentials)["access_key_id"] == "AK"


def test_r2_maps_to_s3_at_the_account_endpoint():
    cfg = objects._s3_config(parse_uri("r2://derived/x.png"), Settings(account="0123abcd"), {})
    assert cfg["endpoint"] == "https://0123abcd.r2.cloudflarestorage.com" and cfg["region"] == "auto"
    with pytest.raises(ObjectStoreError, match="R2 account id"):
        objects._s3_config(parse_uri("r2://derived/x.png"), Settings(), {})


def test_azure_and_gcs_stores_build_without_a_request():
    """Only construction is checked here: no emulator for them runs in this suite."""
    az = Settings(account="acct01", credentials={"account_key": "a2V5"})
    assert objects.store_for(parse_uri("az://box/a"), az) is objects.store_for(parse_uri("az://box/b"), az)
    assert objects.store_for(parse_uri("abfs://box@acct01.dfs.core.windows.net/a"), Settings()) is not None
    gcs = Settings(endpoint="http://127.0.0.1:9", allow_http=True, config={"skip_signature": True})
    assert objects.store_for(parse_uri("gs://bkt/a"), gcs) is not None
    with pytest.raises(ObjectStoreError) as ei:
        objects.store_for(parse_uri("gs://bkt/a"), Settings(config={"no_such_option": "s3cr3tKEY"}))
    assert ei.value.kind == "invalid" and "s3cr3tKEY" not in str(ei.value)


def test_shared_aws_profile_is_the_chains_file_link(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = sdef\n"
        "[media]\naws_access_key_id = AKMED\naws_secret_access_key = smed\naws_session_token = tok\n")
    (tmp_path / ".aws" / "config").write_text("[default]\nregion = eu-west-1\n[profile media]\nregion = us-west-2\n")
    assert objects.shared_aws_profile({}) == {"access_key_id": "AKDEF", "secret_access_key": "sdef",
                                               "region": "eu-west-1"}
    assert objects.shared_aws_profile({"AWS_PROFILE": "media"}) == {
        "access_key_id": "AKMED", "secret_access_key": "smed", "session_token": "tok", "region": "us-west-2"}
    assert "region" not in objects.shared_aws_profile({"AWS_PROFILE": "media", "AWS_REGION": "ap-south-1"})
    assert objects.shared_aws_profile({"AWS_ACCESS_KEY_ID": "AKENV"}) == {}      # the environment wins
    assert objects.shared_aws_profile({"AWS_WEB_IDENTITY_TOKEN_FILE": "/t"}) == {}
    assert objects.shared_aws_profile({"AWS_PROFILE": "nobody"}) == {}
    (tmp_path / ".aws" / "credentials").write_text("not [an ini")
    assert objects.shared_aws_profile({}) == {"region": "eu-west-1"}


def test_shared_credentials_file_signs_real_requests(s3_server, s3_bucket, tmp_path, monkeypatch):
    """No credentials in the settings: the profile's keys are used, and moto checks them."""
    akid, secret = s3_server.iam_user(f"file-{s3_bucket}", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": f"arn:aws:s3:::{s3_bucket}/*"}]})
    creds = tmp_path / "credentials"
    creds.write_text(f"[pxt]\naws_access_key_id = {akid}\naws_secret_access_key = {secret}\n")
    for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_PROFILE", "pxt")
    opts = s3_server.options()
    del opts["credentials"]
    s = Settings(**opts)
    with s3_server.iam_enforced():
        assert objects.put(f"s3://{s3_bucket}/f.bin", b"file chain", s)
        assert objects.read_range(f"s3://{s3_bucket}/f.bin", 0, 4, s) == b"file"


# --- operations against moto --------------------------------------------------------------------
def test_put_head_read_range_list_delete(s3_server, s3_bucket, st):
    data = blob(5000)
    uri = f"s3://{s3_bucket}/a/b.bin"
    assert objects.put(uri, data, st) is True
    assert objects.put(uri, data, st) is False              # content-addressed: already there is success
    assert [r.status for r in s3_server.requests if r.method == "PUT"] == [200, 412]
    info = objects.head(uri, st)
    assert info.size == 5000 and info.etag and info.last_modified is not None and info.version == info.etag
    assert objects.read_range(uri, 10, 5, st) == data[10:15]
    assert objects.read_range(uri, 4990, 50, st) == data[4990:]   # fewer at the end
    assert objects.read_range(uri, 3, 0, st) == b""
    with pytest.raises(ObjectStoreError) as ei:
        objects.read_range(uri, 6000, 5, st)
    assert ei.value.kind == "invalid"
    for k in ("a/c.bin", "a/d/e.bin", "ab.bin"):
        objects.put(f"s3://{s3_bucket}/{k}", b"x", st)
    listed = [u for u, _ in objects.list_prefix(f"s3://{s3_bucket}/a/", st)]
    assert sorted(listed) == [f"s3://{s3_bucket}/a/{k}" for k in ("b.bin", "c.bin", "d/e.bin")]  # not ab.bin
    assert len(objects.list_prefix(f"s3://{s3_bucket}/", st, limit=2)) == 2
    assert objects.exists(uri, st)
    objects.delete(uri, st)
    objects.delete(uri, st)                                   # already gone: fine
    assert not objects.exists(uri, st)


def test_put_a_local_file(s3_bucket, st, tmp_path):
    f = tmp_path / "clip.bin"
    f.write_bytes(blob(70_000, 3))
    assert objects.put(f"s3://{s3_bucket}/clip.bin", f, st)
    assert objects.read_range(f"s3://{s3_bucket}/clip.bin", 0, 70_000, st) == f.read_bytes()
    with pytest.raises(TypeError):
        objects.put(f"s3://{s3_bucket}/t.txt", "text is ambiguous", st)


def test_r2_uri_through_an_endpoint_override(s3_bucket, st):
    r2 = Settings(**{**st.__dict__, "account": "0123abcd"})
    assert objects.put(f"r2://{s3_bucket}/thumb.png", b"png", r2)
    assert objects.head(f"r2://{s3_bucket}/thumb.png", r2).size == 3


def test_download_streams_to_the_destination(s3_server, s3_bucket, st, tmp_path):
    data = blob(3 * MB + 17)
    s3_server.put_object(s3_bucket, "v/clip.mp4", data)
    dest = tmp_path / "clip.mp4"
    info = objects.download(f"s3://{s3_bucket}/v/clip.mp4", str(dest), 4 * MB, st)
    assert info.size == len(data) and dest.read_bytes() == data
    assert os.listdir(tmp_path) == ["clip.mp4"]               # no partial file left beside it
    assert s3_server.count("GET") == 1 and s3_server.count("HEAD") == 1


def test_too_large_is_refused_by_the_head_before_any_get(s3_server, s3_bucket, st, tmp_path):
    s3_server.put_object(s3_bucket, "big.bin", blob(2 * MB))
    with pytest.raises(ObjectStoreError) as ei:
        objects.download(f"s3://{s3_bucket}/big.bin", str(tmp_path / "big"), MB, st)
    assert ei.value.kind == "too_large" and str(2 * MB) in ei.value.message
    assert s3_server.count("GET") == 0 and os.listdir(tmp_path) == []


def test_too_large_is_refused_mid_transfer_when_the_head_lies(s3_server, s3_bucket, st, tmp_path):
    """The HEAD says 10 bytes; the GET's own headers give the truth, and the download stops
    there: far fewer bytes leave the proxy than the object has, and no file appears."""
    size = 16 * MB
    s3_server.put_object(s3_bucket, "liar.bin", blob(size))
    s3_server.misreport_size(10)
    with pytest.raises(ObjectStoreError) as ei:
        objects.download(f"s3://{s3_bucket}/liar.bin", str(tmp_path / "liar"), MB, st)
    assert ei.value.kind == "too_large"
    s3_server.wait_idle()
    assert s3_server.count("GET") == 1
    assert s3_server.bytes_sent("GET") < size // 4           # socket buffers' worth, not the object
    assert os.listdir(tmp_path) == []


def test_streaming_count_stops_as_soon_as_the_limit_is_passed():
    """The last guard, for a server that sends more than it announced: count while writing."""
    pulled = []

    def chunks():
        for i in range(100):
            pulled.append(i)
            yield b"x" * 1000

    class Sink:
        n = 0

        def write(self, b):
            self.n += len(b)
    sink = Sink()
    with pytest.raises(ObjectStoreError) as ei:
        objects.copy_limited("s3://bkt/k", chunks(), sink, 4500)
    assert ei.value.kind == "too_large"
    assert len(pulled) == 5 and sink.n == 4000


def test_missing_object_and_missing_bucket_are_not_found(s3_server, s3_bucket, st, tmp_path):
    for uri in (f"s3://{s3_bucket}/nope.jpg", "s3://no-such-bucket-pxt/a.jpg"):
        for call in (lambda: objects.head(uri, st), lambda: objects.download(uri, str(tmp_path / "x"), MB, st),
                     lambda: objects.read_range(uri, 0, 10, st)):
            with pytest.raises(ObjectStoreError) as ei:
                call()
            assert ei.value.kind == "not_found" and ei.value.uri == uri and not ei.value.retryable
    assert os.listdir(tmp_path) == []


def test_access_denied_by_moto_iam(s3_server, s3_bucket, st):
    """A real IAM decision: the user may touch ``allowed/`` only; a wrong secret fails to sign."""
    s3_server.put_object(s3_bucket, "allowed/a.txt", b"yes")
    s3_server.put_object(s3_bucket, "secret/b.txt", b"no")
    akid, secret = s3_server.iam_user(f"reader-{s3_bucket}", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": f"arn:aws:s3:::{s3_bucket}/allowed/*"}]})
    user = Settings(**s3_server.options(akid, secret))
    forger = Settings(**s3_server.options(akid, "s3cr3tKEY-wrong"))
    with s3_server.iam_enforced():
        assert objects.read_range(f"s3://{s3_bucket}/allowed/a.txt", 0, 3, user) == b"yes"
        assert objects.put(f"s3://{s3_bucket}/allowed/new.txt", b"ok", user)
        s3_server.reset()
        errors = []
        for call in (lambda: objects.head(f"s3://{s3_bucket}/secret/b.txt", user),
                     lambda: objects.read_range(f"s3://{s3_bucket}/secret/b.txt", 0, 2, user),
                     lambda: objects.put(f"s3://{s3_bucket}/secret/c.txt", b"x", user),
                     lambda: objects.read_range(f"s3://{s3_bucket}/allowed/a.txt", 0, 3, forger)):
            with pytest.raises(ObjectStoreError) as ei:
                call()
            errors.append(ei.value)
    assert [e.kind for e in errors] == ["denied"] * 4
    assert s3_server.count() == 4                             # denied is final: no retries
    text = " ".join(str(e) for e in errors)
    assert secret not in text and "s3cr3tKEY" not in text and akid not in text
    assert "SignatureDoesNotMatch" in str(errors[3])


def test_throttling_is_retried_with_backoff_on_the_virtual_clock(s3_server, s3_bucket, st, virtual_clock):
    s3_server.put_object(s3_bucket, "hot.jpg", b"hot")
    s3_server.fail(503, "SlowDown", times=3)
    assert objects.head(f"s3://{s3_bucket}/hot.jpg", st).size == 3
    assert [r.status for r in s3_server.requests] == [503, 503, 503, 200]
    waits = sleeps(virtual_clock)
    assert len(waits) == 3
    for attempt, w in enumerate(waits):                      # base 0.2 s, doubling, with jitter
        d = 0.2 * 2 ** attempt
        assert d / 2 <= w <= d
    assert [e["kind"] for e in virtual_clock.events if e["what"] == "object_retry"] == ["throttled"] * 3


def test_429_and_resets_during_a_download_are_retried(s3_server, s3_bucket, st, virtual_clock, tmp_path):
    data = blob(200_000)
    s3_server.put_object(s3_bucket, "v.mp4", data)
    s3_server.fail(429, "TooManyRequests", times=1, method="GET")
    s3_server.reset_connections(times=1, method="GET")
    objects.download(f"s3://{s3_bucket}/v.mp4", str(tmp_path / "v.mp4"), MB, st)
    assert (tmp_path / "v.mp4").read_bytes() == data
    assert [r.status for r in s3_server.requests if r.method == "GET"] == [429, -1, 200]
    assert len(sleeps(virtual_clock)) == 2


def test_throttling_gives_up_after_the_configured_retries(s3_server, s3_bucket, virtual_clock):
    s = Settings(**s3_server.options(), retries=2)
    s3_server.fail(503, "SlowDown", times=None)
    with pytest.raises(ObjectStoreError) as ei:
        objects.put(f"s3://{s3_bucket}/x.bin", b"x", s)
    assert ei.value.kind == "throttled" and ei.value.status == 503 and "SlowDown" in ei.value.message
    assert s3_server.count("PUT") == 3 and len(sleeps(virtual_clock)) == 2


def test_a_store_that_does_not_answer_times_out(s3_server, s3_bucket, virtual_clock):
    s = Settings(**s3_server.options(), retries=1, read_timeout="200ms")
    s3_server.put_object(s3_bucket, "slow.bin", b"slow")
    s3_server.hang(times=1)
    assert objects.head(f"s3://{s3_bucket}/slow.bin", s).size == 4      # the retry is answered
    s3_server.hang(times=None)
    with pytest.raises(ObjectStoreError) as ei:
        objects.head(f"s3://{s3_bucket}/slow.bin", s)
    assert ei.value.kind == "timeout" and ei.value.retryable
    assert s3_server.count("HEAD") == 4


def test_stores_are_cached_per_bucket_and_settings(s3_bucket, st):
    a = objects.store_for(parse_uri(f"s3://{s3_bucket}/a"), st)
    assert objects.store_for(parse_uri(f"s3://{s3_bucket}/b"), st) is a
    assert objects.store_for(parse_uri(f"s3://{s3_bucket}/b"), Settings(**{**st.__dict__, "retries": 0})) is not a
    assert objects.store_for(parse_uri(f"r2://{s3_bucket}/b"), st) is not a


def test_fetch_many_is_concurrent_and_bounded(s3_server, s3_bucket, st, tmp_path):
    uris = []
    for i in range(6):
        s3_server.put_object(s3_bucket, f"img/{i}.jpg", blob(1000 + i, i))
        uris.append(f"s3://{s3_bucket}/img/{i}.jpg")
    missing = f"s3://{s3_bucket}/img/missing.jpg"
    s3_server.hold(times=3, method="GET")
    out = {}
    t = threading.Thread(target=lambda: out.update(objects.fetch_many(uris + [uris[0], missing, "s3://BAD/x"],
                                                                      str(tmp_path), MB, 3, st)))
    t.start()
    s3_server.wait_for(3, method="GET")                       # three downloads in flight at once
    s3_server.release()
    t.join()
    assert s3_server.max_in_flight == 3
    assert s3_server.count("GET") == 6                        # the duplicate was fetched once
    for i, u in enumerate(uris):
        assert open(out[u], "rb").read() == blob(1000 + i, i) and out[u].endswith(".jpg")
    assert out[missing].kind == "not_found" and out["s3://BAD/x"].kind == "invalid"


# --- the cache ----------------------------------------------------------------------------------
def test_second_read_is_a_cache_hit(s3_server, s3_bucket, st, tmp_path):
    data = blob(300_000)
    uri = f"s3://{s3_bucket}/v/a.mp4"
    s3_server.put_object(s3_bucket, "v/a.mp4", data)
    c = mcache.Cache(str(tmp_path / "cache"), 10 * MB)
    p1 = mcache.get_object(c, uri, MB, st)
    p2 = mcache.get_object(c, uri, MB, st)
    assert p1 == p2 and open(p1, "rb").read() == data
    assert s3_server.count("GET") == 1 and s3_server.count("HEAD") == 2   # a hit costs one HEAD
    assert c.stats() | {"limit_bytes": 0} == {"entries": 1, "bytes": len(data), "limit_bytes": 0, "hits": 1,
                                              "misses": 1, "evicted_bytes": 0, "partial": 0}
    s3_server.put_object(s3_bucket, "v/a.mp4", data[::-1])                # a new version: a new entry
    with mcache.Cache(str(tmp_path / "cache"), 10 * MB).open(uri, lambda t: objects.download(
            uri, t, MB, st), MB, objects.head(uri, st).version) as f:
        assert f.read() == data[::-1]
    assert s3_server.count("GET") == 2
    with pytest.raises(ObjectStoreError) as ei:                          # a hit still honours the limit
        c.get(uri, lambda t: None, 1000, objects.head(uri, st).version)
    assert ei.value.kind == "too_large"


def test_get_objects_batches_through_the_cache(s3_server, s3_bucket, st, tmp_path):
    uris = [f"s3://{s3_bucket}/b/{i}.png" for i in range(5)]
    for i, u in enumerate(uris):
        s3_server.put_object(s3_bucket, f"b/{i}.png", blob(2000, i))
    c = mcache.Cache(str(tmp_path / "cache"), 10 * MB)
    first = mcache.get_objects(c, uris + [f"s3://{s3_bucket}/b/none.png"], MB, 4, st)
    second = mcache.get_objects(c, uris, MB, 4, st)
    assert all(first[u] == second[u] for u in uris)
    assert first[f"s3://{s3_bucket}/b/none.png"].kind == "not_found"
    assert s3_server.count("GET") == 5 and c.stats()["hits"] == 5


def _writer(data: bytes):
    def fetch(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
    return fetch


def test_eviction_keeps_the_size_bound_least_recently_used_first(tmp_path):
    ticks = iter(range(1, 10_000))
    c = mcache.Cache(str(tmp_path / "cache"), 10_000, now_ns=lambda: next(ticks) * 1_000_000_000)
    paths = {}
    for name in ("a", "b", "c"):
        paths[name] = c.get(f"s3://bkt/{name}", _writer(blob(3000)), MB, "v1")
    c.get("s3://bkt/a", _writer(b""), MB, "v1")               # a is used again: b is now the oldest
    for name in ("d", "e"):
        paths[name] = c.get(f"s3://bkt/{name}", _writer(blob(3000)), MB, "v1")
        assert c.stats()["bytes"] <= 10_000
    assert {n for n, p in paths.items() if os.path.exists(p)} == {"a", "d", "e"}
    assert c.stats()["evicted_bytes"] == 6000
    assert c.evict(0) == 9000 and c.stats()["entries"] == 0


def test_eviction_spares_entries_in_use(tmp_path):
    import fcntl

    c = mcache.Cache(str(tmp_path / "cache"), MB)
    p = c.get("s3://bkt/busy", _writer(b"busy"), MB, "v1")
    q = c.get("s3://bkt/idle", _writer(b"idle"), MB, "v1")
    with c._locked(c.key("s3://bkt/busy", "v1"), fcntl.LOCK_SH):     # another backend is serving it
        assert c.evict(0) == 4
    assert os.path.exists(p) and not os.path.exists(q)
    key = c.key("s3://bkt/busy", "v1")
    assert c._remove_unused(key, p, atime=1) is None and os.path.exists(p)  # used since the scan


def test_a_failed_fetch_leaves_nothing_visible(tmp_path):
    c = mcache.Cache(str(tmp_path / "cache"), MB)

    def broken(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise ObjectStoreError("s3://bkt/x", "other", "connection lost")
    with pytest.raises(ObjectStoreError):
        c.get("s3://bkt/x", broken, MB, "v1")
    with pytest.raises(ObjectStoreError) as ei:
        c.get("s3://bkt/y", _writer(blob(5000)), 4000, "v1")
    assert ei.value.kind == "too_large"
    assert c.stats()["entries"] == 0 and c.stats()["partial"] == 0


# --- the cache across processes -----------------------------------------------------------------
def _cache_worker(root, uri, opts, out):
    """A backend: read ``uri`` through the shared cache; report the path and whether it hit."""
    c = mcache.Cache(root, 100 * MB)
    try:
        path = mcache.get_object(c, uri, 100 * MB, Settings(**opts))
        out.put(("ok", path, c.stats()["hits"]))
    except Exception as e:  # noqa: BLE001 - reported to the test
        out.put(("error", repr(e), 0))


def _blocked_flock_waiters(path: str) -> int:
    """Processes waiting for a flock on ``path`` (Linux /proc/locks: '->' marks a waiter)."""
    ino = os.stat(path).st_ino
    with open("/proc/locks") as f:
        return sum(1 for line in f if "->" in line and "FLOCK" in line
                   and line.split()[-3].rsplit(":", 1)[-1] == str(ino))


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux /proc/locks")
def test_two_processes_download_an_object_once(s3_server, s3_bucket, st, tmp_path):
    data = blob(MB)
    uri = f"s3://{s3_bucket}/shared/v.mp4"
    s3_server.put_object(s3_bucket, "shared/v.mp4", data)
    root = str(tmp_path / "cache")
    key = mcache.Cache(root, 100 * MB).key(uri, objects.head(uri, st).version)
    s3_server.reset()
    s3_server.hold(times=1, method="GET")                     # the first download waits for us
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_cache_worker, args=(root, uri, s3_server.options(), out)) for _ in range(2)]
    for p in procs:
        p.start()
    try:
        s3_server.wait_for(1, method="GET")
        lock = os.path.join(root, ".locks", key + ".lock")
        wait_until(lambda: _blocked_flock_waiters(lock) >= 1, "the second backend to wait on the entry lock")
        assert s3_server.count("GET") == 1
        s3_server.release()
        results = [out.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
    assert [r[0] for r in results] == ["ok", "ok"], results
    assert results[0][1] == results[1][1] and open(results[0][1], "rb").read() == data
    assert sorted(r[2] for r in results) == [0, 1]            # one downloaded, the other hit
    assert s3_server.count("GET") == 1


def test_a_killed_download_leaves_no_visible_file(s3_server, s3_bucket, st, tmp_path):
    data = blob(4 * MB)
    uri = f"s3://{s3_bucket}/k/v.mp4"
    s3_server.put_object(s3_bucket, "k/v.mp4", data)
    root = str(tmp_path / "cache")
    s3_server.stall(after_bytes=2 * MB)                        # half the body, then silence
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    p = ctx.Process(target=_cache_worker, args=(root, uri, s3_server.options(), out))
    p.start()
    tmp = os.path.join(root, ".tmp")
    wait_until(lambda: any(e.stat().st_size > 0 for e in os.scandir(tmp)) if os.path.isdir(tmp) else False,
               "a partial download on disk")
    os.kill(p.pid, signal.SIGKILL)
    p.join(timeout=60)
    c = mcache.Cache(root, 100 * MB)
    assert c.stats()["entries"] == 0 and c.stats()["partial"] >= 1   # only in .tmp, never served
    path = mcache.get_object(c, uri, 100 * MB, st)            # the next reader downloads it whole
    assert open(path, "rb").read() == data and c.stats()["misses"] == 1
    c.evict()
    assert c.stats()["partial"] == 0 and c.stats()["entries"] == 1


def test_a_recent_head_answers_for_max_age(s3_server, s3_bucket, st, tmp_path):
    """A hit within max_age of the last HEAD (by any Cache on the directory) makes no request;
    after it, one HEAD again. Time is the cache's injected clock, not the wall's."""
    now = [10**12]
    s3_server.put_object(s3_bucket, "f/a.bin", blob(5000))
    uri = f"s3://{s3_bucket}/f/a.bin"
    c = mcache.Cache(str(tmp_path / "cache"), 10 * MB, now_ns=lambda: now[0])
    p = mcache.get_object(c, uri, MB, st, max_age_ns=60 * 10**9)
    other = mcache.Cache(str(tmp_path / "cache"), 10 * MB, now_ns=lambda: now[0])  # another backend
    now[0] += 59 * 10**9
    assert mcache.get_object(other, uri, MB, st, max_age_ns=60 * 10**9) == p
    assert (s3_server.count("HEAD"), s3_server.count("GET")) == (1, 1)
    now[0] += 2 * 10**9
    assert mcache.get_object(other, uri, MB, st, max_age_ns=60 * 10**9) == p
    assert (s3_server.count("HEAD"), s3_server.count("GET")) == (2, 1)
    s3_server.put_object(s3_bucket, "f/a.bin", blob(5000, 1))  # changed: seen once max_age has passed
    now[0] += 61 * 10**9
    assert open(mcache.get_object(other, uri, MB, st, max_age_ns=60 * 10**9), "rb").read() == blob(5000, 1)
    assert mcache.get_object(c, uri, MB, st, max_age_ns=0) != p  # 0: always ask
