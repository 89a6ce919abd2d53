"""pxt.detect, pxt.caption and pxt.transcribe on tiny random-weight models in
pixelgres.model_dir: the server's results equal the same model run directly (hf_tasks in this
process), batching, per-row errors, and missing models."""
import json

import av
import numpy as np
import psycopg
import pytest
from PIL import Image

from conftest import set_for_database

from pixelgres.server.ai import hf_tasks
from pixelgres.testing.models import tiny_captioner, tiny_detector, tiny_whisper


@pytest.fixture(scope="module")
def task_models(server):
    root = server.files / "task-models"
    if not root.exists():
        root.mkdir()
        root.chmod(0o755)
        tiny_detector(root / "tiny-detector")
        tiny_captioner(root / "tiny-captioner")
        tiny_whisper(root / "tiny-whisper")
    return root


@pytest.fixture
def mdb(db, dbname, task_models):
    set_for_database(db, dbname, {"pixelgres.model_dir": str(task_models)})
    return db


def pictures(files, n=4):
    rng = np.random.default_rng(11)
    paths = []
    for i in range(n):
        p = files / f"scene{i}.png"
        Image.fromarray(rng.integers(0, 256, (48 + 8 * i, 64, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def speech(path, seconds: float, rate: int = 22050, freq: float = 440.0):
    """A mono sine at another sample rate than the model's (the server resamples to 16 kHz)."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
    with av.open(str(path), "w") as out:
        st = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for p in st.encode(frame):
            out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    path.chmod(0o644)
    return str(path)


def test_detect_matches_the_model_run_directly(mdb, task_models, files):
    paths = pictures(files)
    mdb.execute("SELECT pxt.create_table('ml.scenes', '{\"image\": \"image\"}')")
    mdb.execute("SELECT pxt.add_computed_column('ml.scenes', 'objects', "
                "'pxt.detect(image, ''tiny-detector'', threshold => 0.0, top_k => 5)')")
    mdb.execute("INSERT INTO ml.scenes (image) SELECT unnest(%s::text[])", (paths,))
    got = [r[0] for r in mdb.execute('SELECT objects FROM pxt_data."ml.scenes" ORDER BY _pxt_rowid')]
    model, processor = hf_tasks.load("detect", str(task_models / "tiny-detector"))
    want = hf_tasks.detect(model, processor, [Image.open(p).convert("RGB") for p in paths], threshold=0.0, top_k=5)
    assert got == json.loads(json.dumps(want)) and all(len(g) == 5 for g in got)
    assert {o["label"] for g in got for o in g} <= {"cat", "dog", "car"}
    stats = {r[1]: r for r in mdb.execute("SELECT * FROM pxt.embedding_models() WHERE function = 'detect'")}
    _, _, _, loads, _, batches, n, _ = stats["tiny-detector"]
    assert (loads, batches, n) == (1, 1, len(paths))  # one load, one batch of all rows
    assert mdb.execute("SELECT pxt.detect(%s::pxt.image, 'tiny-detector', threshold => 1.0)",
                       (paths[0],)).fetchone()[0] == []


def test_caption_matches_the_model_run_directly(mdb, task_models, files):
    paths = pictures(files, 3)
    got = [r[0] for r in mdb.execute(
        "SELECT pxt.caption(p::pxt.image, 'tiny-captioner', max_tokens => 6) FROM unnest(%s::text[]) "
        "WITH ORDINALITY u(p, o) ORDER BY o", (paths,))]
    model, processor = hf_tasks.load("caption", str(task_models / "tiny-captioner"))
    assert got == hf_tasks.caption(model, processor, [Image.open(p).convert("RGB") for p in paths], max_new_tokens=6)
    assert all(isinstance(g, str) for g in got)


def test_transcribe_resamples_and_segments(mdb, task_models, files):
    short, long = speech(files / "short.wav", 2.0), speech(files / "long.wav", 65.0, freq=220.0)
    mdb.execute("SELECT pxt.create_table('ml.talks', '{\"audio\": \"audio\"}')")
    mdb.execute("SELECT pxt.add_computed_column('ml.talks', 'transcript', "
                "'pxt.transcribe(audio, ''tiny-whisper'', max_tokens => 8)')")
    mdb.execute("INSERT INTO ml.talks (audio) VALUES (%s), (%s)", (short, long))
    got = [r[0] for r in mdb.execute('SELECT transcript FROM pxt_data."ml.talks" ORDER BY _pxt_rowid')]
    assert [len(g["segments"]) for g in got] == [1, 3]
    assert [(s["start"], s["end"]) for s in got[1]["segments"]] == [(0, 30), (30, 60), (60, 65)]
    assert got[0]["segments"][0]["end"] == pytest.approx(2.0, abs=0.01)
    model, processor = hf_tasks.load("transcribe", str(task_models / "tiny-whisper"))
    with av.open(short) as c:  # the same resampling, here: 16 kHz mono float
        res = av.AudioResampler(format="flt", layout="mono", rate=16000)
        parts = [f.to_ndarray().reshape(-1) for fr in c.decode(audio=0) for f in res.resample(fr)]
        parts += [f.to_ndarray().reshape(-1) for f in res.resample(None)]
    want = hf_tasks.transcribe(model, processor, [np.concatenate(parts)], sampling_rate=16000, max_new_tokens=8)
    assert got[0]["text"] == want[0]["text"]


def test_bad_inputs_and_missing_models(mdb, files):
    paths = pictures(files, 1)
    (files / "junk.png").write_bytes(b"junk")
    mdb.execute("SELECT pxt.create_table('t', '{\"ref\": \"string\"}')")
    mdb.execute("SELECT pxt.add_computed_column('t', 'caption', 'pxt.caption(ref::pxt.image, ''tiny-captioner'')', "
                "on_error => 'ignore')")
    mdb.execute("INSERT INTO t (ref) VALUES (%s), (%s)", (paths[0], str(files / "junk.png")))
    rows = mdb.execute('SELECT caption IS NOT NULL, _pxt_errors FROM pxt_data."public.t" ORDER BY _pxt_rowid').fetchall()
    assert rows[0] == (True, None) and "junk.png" in rows[1][1]["caption"]["message"]
    with pytest.raises(psycopg.Error, match="model 'yolos-tiny' is not installed"):
        mdb.execute("SELECT pxt.detect(%s::pxt.image)", (paths[0],))
    with pytest.raises(psycopg.Error, match="does not load as a detect model"):
        mdb.execute("SELECT pxt.detect(%s::pxt.image, 'tiny-captioner')", (paths[0],))
    with pytest.raises(psycopg.Error, match="threshold"):
        mdb.execute("SELECT pxt.detect(%s::pxt.image, 'tiny-detector', threshold => 2)", (paths[0],))
    with pytest.raises(psycopg.Error, match="has no audio stream"):
        mdb.execute("SELECT pxt.transcribe(%s::pxt.audio, 'tiny-whisper')", (paths[0],))
