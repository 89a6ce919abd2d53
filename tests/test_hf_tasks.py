"""Object detection, captioning and transcription (pixelgres.server.ai.hf_tasks) on tiny
random-weight models built from a config (pixelgres.testing.models): the real transformers
loading, preprocessing, forward/generate and post-processing paths, no database."""
import ast
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelgres.server.ai import hf_tasks
from pixelgres.testing.models import tiny_captioner, tiny_detector, tiny_whisper

LABELS = ("cat", "dog", "car")
SR = 16000


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_models")
    return {"detect": tiny_detector(root / "detector", labels=LABELS),
            "caption": tiny_captioner(root / "captioner"),
            "transcribe": tiny_whisper(root / "whisper")}


@pytest.fixture(scope="module")
def detector(dirs):
    return hf_tasks.load("detect", str(dirs["detect"]))


@pytest.fixture(scope="module")
def captioner(dirs):
    return hf_tasks.load("caption", str(dirs["caption"]))


@pytest.fixture(scope="module")
def whisper(dirs):
    return hf_tasks.load("transcribe", str(dirs["transcribe"]))


def images():
    noise = np.random.RandomState(0).randint(0, 256, (50, 80, 3), dtype=np.uint8)
    return [Image.fromarray(noise), Image.new("RGB", (30, 90), "red"), Image.new("L", (200, 100), 128)]


def sine(seconds: float) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def test_builders_write_small_readable_models(dirs):
    for path in dirs.values():
        files = [p for p in Path(path).rglob("*") if p.is_file()]
        assert {"config.json", "model.safetensors"} <= {p.name for p in files}
        assert sum(p.stat().st_size for p in files) < 2 * 1024 * 1024
        assert all(p.stat().st_mode & 0o777 == 0o644 for p in files)
        assert Path(path).stat().st_mode & 0o777 == 0o755


def test_module_is_pure():
    """No plpy, no database, nothing from pixelgres: it runs in a backend and a worker alike."""
    tree = ast.parse(Path(hf_tasks.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert imported <= {"__future__", "numpy", "torch", "transformers"}
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))


def test_load_gives_eval_models(detector, captioner, whisper):
    for model, processor in (detector, captioner, whisper):
        assert not model.training and processor is not None
    assert detector[0].config.id2label == dict(enumerate(LABELS))


@pytest.mark.parametrize("task, other", [("detect", "caption"), ("caption", "transcribe"),
                                         ("transcribe", "detect"), ("detect", "transcribe")])
def test_load_rejects_another_tasks_model(dirs, task, other):
    with pytest.raises(ValueError, match=f"does not load as a {task} model: "):
        hf_tasks.load(task, str(dirs[other]))


def test_load_rejects_empty_dir_and_unknown_task(tmp_path, dirs):
    with pytest.raises(ValueError, match=r"does not load as a detect model: \w+Error: "):
        hf_tasks.load("detect", str(tmp_path))
    with pytest.raises(ValueError, match="does not load as a transcribe model"):
        hf_tasks.load("transcribe", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="unknown task 'segment'"):
        hf_tasks.load("segment", str(dirs["detect"]))


def test_detect(detector):
    ims = images()
    found = hf_tasks.detect(*detector, ims, threshold=0.0)
    assert len(found) == len(ims)
    for im, dets in zip(ims, found):
        assert 1 <= len(dets) <= 10  # 10 detection tokens
        scores = [d["score"] for d in dets]
        assert scores == sorted(scores, reverse=True)
        for d in dets:
            assert set(d) == {"label", "score", "box"}
            assert d["label"] in LABELS
            assert isinstance(d["score"], float) and 0 <= d["score"] <= 1 and d["score"] == round(d["score"], 4)
            x0, y0, x1, y1 = d["box"]
            assert all(isinstance(v, float) and v == round(v, 1) for v in d["box"])
            assert 0 <= x0 <= x1 <= im.width and 0 <= y0 <= y1 <= im.height
    assert len({d["label"] for dets in found for d in dets}) > 1  # the heads are not degenerate

    assert hf_tasks.detect(*detector, ims, threshold=0.0) == found  # eval mode: deterministic
    assert hf_tasks.detect(*detector, ims, threshold=1.0) == [[], [], []]
    assert hf_tasks.detect(*detector, ims, threshold=0.0, top_k=2) == [dets[:2] for dets in found]
    default = hf_tasks.detect(*detector, ims)
    assert [[d for d in dets if d["score"] > 0.5] for dets in found] == default
    assert hf_tasks.detect(*detector, []) == []


@pytest.mark.parametrize("bad", [{"threshold": -0.1}, {"threshold": 1.5}, {"threshold": math.nan},
                                 {"threshold": "0.5"}, {"threshold": True}, {"top_k": 0}, {"top_k": 1.5}])
def test_detect_rejects_bad_arguments(detector, bad):
    with pytest.raises(ValueError, match="threshold must be|top_k must be"):
        hf_tasks.detect(*detector, images(), **bad)


def test_caption(captioner):
    model, processor = captioner
    ims = images()
    for n in (1, 3, 7):
        captions = hf_tasks.caption(model, processor, ims, max_new_tokens=n)
        assert len(captions) == len(ims) and all(isinstance(c, str) for c in captions)
        for c in captions:
            assert c == c.strip() and "[" not in c  # no [DEC], [SEP], [PAD] left
            assert len(processor.tokenizer(c, add_special_tokens=False).input_ids) <= n
    assert any(hf_tasks.caption(model, processor, ims, max_new_tokens=7))
    assert hf_tasks.caption(model, processor, ims) == hf_tasks.caption(model, processor, ims)
    prompted = hf_tasks.caption(model, processor, ims, max_new_tokens=5, prompt="a picture of")
    assert all(c.startswith("a picture of") for c in prompted)
    assert hf_tasks.caption(model, processor, []) == []


@pytest.mark.parametrize("bad", [0, 513, 2.5, True, None])
def test_generation_rejects_bad_max_new_tokens(captioner, whisper, bad):
    with pytest.raises(ValueError, match="max_new_tokens must be an integer from 1 to 512"):
        hf_tasks.caption(*captioner, images(), max_new_tokens=bad)
    with pytest.raises(ValueError, match="max_new_tokens must be an integer from 1 to 512"):
        hf_tasks.transcribe(*whisper, [sine(1)], max_new_tokens=bad)


def test_transcribe_windows(whisper):
    noise = np.random.RandomState(0).uniform(-1, 1, 65 * SR).astype(np.float32)
    result = hf_tasks.transcribe(*whisper, [sine(2), noise], max_new_tokens=4)
    assert len(result) == 2
    short, long = result
    assert [(s["start"], s["end"]) for s in short["segments"]] == [(0.0, 2.0)]
    assert [(s["start"], s["end"]) for s in long["segments"]] == [(0.0, 30.0), (30.0, 60.0), (60.0, 65.0)]
    for r in result:
        assert set(r) == {"text", "segments"} and isinstance(r["text"], str)
        for s in r["segments"]:
            assert set(s) == {"start", "end", "text"} and isinstance(s["text"], str)
            assert len(s["text"]) <= 4  # byte-level tokens: at most a character each
        assert r["text"] == " ".join(s["text"] for s in r["segments"] if s["text"])
    assert any(r["text"] for r in result)
    assert hf_tasks.transcribe(*whisper, [sine(2), noise], max_new_tokens=4) == result
    # a window of exactly 30 s is one segment; lists of floats are accepted
    exact = hf_tasks.transcribe(*whisper, [list(sine(30))], max_new_tokens=1)[0]
    assert [(s["start"], s["end"]) for s in exact["segments"]] == [(0.0, 30.0)]
    assert hf_tasks.transcribe(*whisper, []) == []


def test_transcribe_default_and_decoder_limit(whisper):
    """max_new_tokens beyond the decoder's 448 positions is capped, not an error from generate."""
    for n in (128, 512):
        (r,) = hf_tasks.transcribe(*whisper, [sine(1)], max_new_tokens=n)
        assert isinstance(r["text"], str) and len(r["segments"]) == 1


def test_transcribe_rejects_bad_audio(whisper):
    with pytest.raises(ValueError, match="sampled at 8000 Hz but this model takes 16000 Hz"):
        hf_tasks.transcribe(*whisper, [sine(1)], sampling_rate=8000)
    with pytest.raises(ValueError, match="audio 1 is empty"):
        hf_tasks.transcribe(*whisper, [sine(1), np.zeros(0, np.float32)])
    with pytest.raises(ValueError, match="expected 1-D mono"):
        hf_tasks.transcribe(*whisper, [np.zeros((2, SR), np.float32)])
