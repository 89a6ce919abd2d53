"""The Pixeltable contract of the Python-wrapper issue, verbatim except for the imports, run
against the test OpenAI-compatible server and a generated video.

The dataset lives in a 0700 directory the server (OS user postgres) cannot read, addressed
by relative paths, so the insert uploads every file into the media store.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image

from pixelgres.testing.media import grey_video


COLOURS = {"red": (230, 20, 20), "green": (20, 170, 20), "blue": (20, 20, 230)}
NEEDED = ("openai_chat_completions", "openai_embeddings", "add_embedding_index", "embed", "create_view",
          "frame_iterator", "history", "create_snapshot", "revert")


def make_video(path: Path, seconds: int = 12, rate: int = 10) -> None:
    grey_video(path, seconds * rate, rate, (64, 48), shade=lambda i: (i * 2) % 256, codec="mpeg4")


@pytest.fixture
def workdir(monkeypatch):
    d = Path(tempfile.mkdtemp(prefix="pxt-contract-"))
    os.chmod(d, 0o700)
    (d / "dataset" / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (name, rgb) in enumerate(list(COLOURS.items()) * 3):
        arr = np.clip(np.array(rgb) + rng.integers(-15, 16, (48, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(d / "dataset" / "images" / f"{name}_{i}.jpg", quality=95)
    make_video(d / "demo.mp4")
    monkeypatch.chdir(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def contract_env(server, dsn, workdir, monkeypatch):
    from openai_server import OpenAIServer
    with psycopg.connect(dsn, autocommit=True) as c:
        have = {r[0] for r in c.execute("SELECT proname FROM pg_proc WHERE pronamespace = 'pxt'::regnamespace")}
        assert [n for n in NEEDED if n not in have] == []
        c.execute(psycopg.sql.SQL("ALTER DATABASE {} SET pixelgres.allowed_url_hosts = '127.0.0.1'").format(
            psycopg.sql.Identifier(c.info.dbname)))
    with OpenAIServer() as api:
        monkeypatch.setenv("OPENAI_BASE_URL", api.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-contract-test")
        monkeypatch.setenv("PIXELGRES_DSN", dsn)
        yield api
    from pixelgres.client import session

    if session._current is not None:
        session._current.close()


def test_the_contract_runs(contract_env):
    api = contract_env
    # ---- the code, verbatim except for the imports --------------------------------------
    import pixelgres as pxt  # noqa: F811
    from pixelgres.functions.openai import chat_completions, embeddings
    from pixelgres.functions.video import frame_iterator
    images = pxt.create_table('ml.images', {'image': pxt.Image, 'category': pxt.String})
    images.add_computed_column(thumbnail=images.image.resize((256, 256)))
    messages = [{'role': 'user', 'content': [
        {'type': 'text', 'text': 'Describe this image in one sentence.'},
        {'type': 'image_url', 'image_url': images.image}]}]
    images.add_computed_column(response=chat_completions(messages=messages, model='gpt-4o-mini'))
    images.add_computed_column(caption=images.response.choices[0].message.content)
    images.add_embedding_index('caption', string_embed=embeddings.using(model='text-embedding-3-small'))
    images.insert([{'image': str(f), 'category': 'unknown'} for f in Path('dataset/images/').glob('*.jpg')])
    sim = images.caption.similarity(string='a dog playing in the park')
    top = images.order_by(sim, asc=False).limit(5).select(images.image, images.caption).collect()
    top_all = images.select(images.caption).collect()["caption"]
    videos = pxt.create_table('ml.videos', {'video': pxt.Video})
    frames = pxt.create_view('ml.frames', videos, iterator=frame_iterator(videos.video, fps=1))
    videos.insert([{'video': 'demo.mp4'}]); head = frames.select(frames.frame).head(10)
    hist_before = images.history()
    images.history(); pxt.create_snapshot('ml.images_before_relabeling', images); images.revert()
    ds = images.select(images.image, images.category).to_pytorch_dataset()
    # ---- what it did ---------------------------------------------------------------------------------
    assert len(top) == 5 and all(c and c.startswith("A 256x256 image") is False for c in top["caption"])
    assert {c.split("mostly ")[-1].rstrip(".") for c in top["caption"]} <= set(COLOURS)
    assert all(r.startswith("media://") for r in top["image"])  # uploaded: the server cannot read the dir
    assert api.count("/chat/completions") == 9 and api.count("/embeddings") >= 1
    assert all(r.auth == "Bearer sk-contract-test" for r in api.requests)  # the client's key reached the server
    assert len(head) == 10 and all(f for f in head["frame"])
    assert len(hist_before) >= 5 and hist_before[0]["change_type"] == "data" and hist_before[0]["inserts"] == 9
    # the revert undid the insert; the snapshot taken just before it still shows the 9 rows (it took
    # them over: pixelgres keeps a snapshot of a reverted version, where Pixeltable refuses the revert)
    hist = images.history()
    assert hist[0]["version"] == hist_before[0]["version"] - 1 and hist[0]["change_type"] == "schema"
    assert images.count() == 0 and list(ds) == []
    snap = pxt.get_table('ml.images_before_relabeling')
    rows = list(snap.select(snap.image, snap.category).to_pytorch_dataset())
    assert len(rows) == 9 and rows[0]["image"].shape == (3, 48, 64) and rows[0]["category"] == "unknown"
    assert sorted(snap.select(snap.caption).collect()["caption"]) == sorted(top_all)
