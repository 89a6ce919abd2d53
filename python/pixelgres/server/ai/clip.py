"""CLIP: images and texts embedded in one space, so a text finds images and an image finds
similar images (``pxt.clip_image``, ``pxt.clip_text``; docs/models.md).

transformers' CLIPModel on torch CPU, the library the server already carries for
sentence-transformers (open_clip would add a second stack; ONNX would need an exported copy
of every model). Weights from ``pixelgres.model_dir`` (``local_models``). Both functions are
batched: one statement's rows are embedded in chunks of CHUNK.
"""
from __future__ import annotations

import collections
import json
import os

from ..core.batch import batched
from ..model_store import model_path
from . import inference, model_client
from .embedding_models import _check_interrupts, _stat, vec_text
from .local_models import loaded, row_error

DEFAULT = "clip-vit-base-patch32"
CHUNK = 64


def _load(name: str):
    model = loaded("clip", name, lambda path: inference.load("clip_image", path))
    _stat(f"clip/{name}")["dims"] = inference.dims("clip_image", model)
    return model


def _side(path: str) -> int:
    """The vision tower's input side, from the model's config (no weights loaded)."""
    try:
        with open(os.path.join(path, "config.json")) as f:
            return int(json.load(f).get("vision_config", {}).get("image_size", 224))
    except (OSError, ValueError, TypeError, AttributeError):
        return 224


def _images(uris: list, side: int):
    """Decoded images (upright; JPEGs at a reduced scale) or each row's error."""
    from ..media import image  # lazy: Pillow loads for image inputs only

    out = []
    for uri in uris:
        try:
            im, _ = image.load(uri, size=(side, side))
            out.append(im.convert("RGB"))
        except Exception as e:  # this row's error; the others go on
            out.append(row_error(e))
    return out


def _embed(batch: list[tuple], kind: str) -> list:
    """batch: distinct (input, model) tuples; per model, chunks of CHUNK, embedded in this
    backend or by the shared model server (pixelgres.model_server)."""
    out: list = [None] * len(batch)
    by_model: dict = collections.defaultdict(list)
    for i, (_, model) in enumerate(batch):
        by_model[model].append(i)
    shared = model_client.configured()
    for name, idx in by_model.items():
        try:
            if shared:
                path, model = model_path(name), None
                side = _side(path)
            else:
                model = _load(name)
                side = inference.image_side(model)
        except Exception as e:
            for i in idx:
                out[i] = e
            continue
        s = _stat(f"clip/{name}")
        for c in range(0, len(idx), CHUNK):
            if c:
                _check_interrupts()
            part = idx[c:c + CHUNK]
            values = [batch[i][0] for i in part]
            if kind == "clip_image":
                values = _images(values, side)
            good = [(i, v) for i, v in zip(part, values) if not isinstance(v, Exception)]
            for i, v in zip(part, values):
                if isinstance(v, Exception):
                    out[i] = v
            if not good:
                continue
            inputs = [v for _, v in good]
            if shared:
                if kind == "clip_image":
                    inputs = [(im.width, im.height, im.tobytes()) for im in inputs]
                vecs, s["dims"] = model_client.embed(kind, path, inputs)
            else:
                vecs = inference.embed(kind, model, inputs)
            for (i, _), v in zip(good, vecs):
                out[i] = vec_text(v)
        s["batches"] += 1
        s["texts"] += len(idx)
    return out


@batched("clip_image")
def clip_image_batch(batch: list[tuple]) -> list:
    return _embed(batch, "clip_image")


@batched("clip_text")
def clip_text_batch(batch: list[tuple]) -> list:
    return _embed(batch, "clip_text")
