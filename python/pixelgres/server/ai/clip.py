"""CLIP: images and texts embedded in one space, so a text finds images and an image finds
similar images (``pxt.clip_image``, ``pxt.clip_text``; docs/models.md).

transformers' CLIPModel on torch CPU, the library the server already carries for
sentence-transformers (open_clip would add a second stack; ONNX would need an exported copy
of every model). Weights from ``pixelgres.model_dir`` (``local_models``). Both functions are
batched: one statement's rows are embedded in chunks of CHUNK.
"""
from __future__ import annotations

import collections

from ..core import deps
from ..core.batch import batched
from .embedding_models import _check_interrupts, _stat, vec_text
from .local_models import loaded, row_error

DEFAULT = "clip-vit-base-patch32"
CHUNK = 64


def _load(name: str):
    def load(path):
        transformers = deps.need("transformers")
        model = transformers.CLIPModel.from_pretrained(path, local_files_only=True).eval()
        return model, transformers.CLIPProcessor.from_pretrained(path, local_files_only=True)
    model, processor = loaded("clip", name, load)
    _stat(f"clip/{name}")["dims"] = int(model.config.projection_dim)
    return model, processor


def _features(out):
    """get_*_features: a tensor (transformers 4), or an output whose pooler_output is it (5)."""
    return out.pooler_output if hasattr(out, "pooler_output") else out


def _embed(batch: list[tuple], encode) -> list:
    """batch: distinct (input, model) tuples; per model, chunks of CHUNK through ``encode``."""
    out: list = [None] * len(batch)
    by_model: dict = collections.defaultdict(list)
    for i, (_, model) in enumerate(batch):
        by_model[model].append(i)
    for name, idx in by_model.items():
        try:
            model, processor = _load(name)
        except Exception as e:
            for i in idx:
                out[i] = e
            continue
        torch = deps.need("torch")
        s = _stat(f"clip/{name}")
        for c in range(0, len(idx), CHUNK):
            if c:
                _check_interrupts()
            part = idx[c:c + CHUNK]
            with torch.inference_mode():
                vecs, errors = encode(model, processor, [batch[i][0] for i in part])
            vecs = torch.nn.functional.normalize(vecs, dim=-1) if vecs is not None else None
            k = 0
            for i, err in zip(part, errors):
                if err is not None:
                    out[i] = err
                else:
                    out[i] = vec_text(vecs[k].tolist())
                    k += 1
        s["batches"] += 1
        s["texts"] += len(idx)
    return out


def _images(model, processor, uris: list):
    from ..media import image  # lazy: Pillow loads for image inputs only

    side = int(getattr(model.config.vision_config, "image_size", 224))
    ims, errors = [], []
    for uri in uris:
        try:
            im, _ = image.load(uri, size=(side, side))  # upright; JPEGs decode at a reduced scale
            ims.append(im.convert("RGB"))
            errors.append(None)
        except Exception as e:  # this row's error; the others go on
            errors.append(row_error(e))
    if not ims:
        return None, errors
    inputs = processor(images=ims, return_tensors="pt")
    return _features(model.get_image_features(pixel_values=inputs["pixel_values"])), errors


def _texts(model, processor, texts: list):
    limit = int(getattr(model.config.text_config, "max_position_embeddings", 77))
    inputs = processor.tokenizer(texts, padding=True, truncation=True, max_length=limit, return_tensors="pt")
    return (_features(model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])),
            [None] * len(texts))


@batched("clip_image")
def clip_image_batch(batch: list[tuple]) -> list:
    return _embed(batch, _images)


@batched("clip_text")
def clip_text_batch(batch: list[tuple]) -> list:
    return _embed(batch, _texts)
