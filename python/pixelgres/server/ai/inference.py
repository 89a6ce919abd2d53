"""Local models without PostgreSQL: load from a directory, run on a list of inputs.

The one implementation that both a backend (in-process) and the shared model server
(model_server.py, which every backend of a cluster can call) run, so the two give the same
vectors. No plpy here: a backend resolves model names to directories and decodes media
first, then hands over plain values — texts, images as (width, height, RGB bytes), audio as
float32 samples. Embeddings are here; detection, captions and speech are hf_tasks'.
"""
from __future__ import annotations

import os

EMBEDDINGS = ("clip_image", "clip_text", "sentence_transformer")
TASKS = ("detect", "caption", "transcribe")  # hf_tasks; their options go with the inputs
KINDS = EMBEDDINGS + TASKS


def offline(threads: int) -> None:
    """The model server's set-up: never reach a model hub; bounded torch threads. Unlike a
    backend's, its OpenMP threads keep the default wait policy (a short spin, then sleep): they
    are the cluster's only model threads, so spinning takes no core from another model, and it
    saves a thread wake-up in each of a query's many small parallel regions (docs/models.md, W10).
    Set here, before torch loads OpenMP, so the backends' PASSIVE default cannot apply."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(max(1, threads))


def family(kind: str) -> str:
    """Which loaded model serves ``kind``: CLIP's two towers are one model."""
    return "clip" if kind.startswith("clip_") else kind


def load(kind: str, path: str):
    if family(kind) == "clip":
        import transformers

        transformers.logging.set_verbosity_error()
        model = transformers.CLIPModel.from_pretrained(path, local_files_only=True).eval()
        return model, transformers.CLIPProcessor.from_pretrained(path, local_files_only=True)
    if kind == "sentence_transformer":
        import sentence_transformers

        return sentence_transformers.SentenceTransformer(path, device="cpu", local_files_only=True)
    if kind in TASKS:
        from . import hf_tasks

        return hf_tasks.load(kind, path)
    raise ValueError(f"no local model kind {kind!r}")


def image_side(model) -> int:
    """The square side CLIP's vision tower takes (images are decoded near it)."""
    return int(getattr(model[0].config.vision_config, "image_size", 224))


def dims(kind: str, model) -> int:
    if family(kind) == "clip":
        return int(model[0].config.projection_dim)
    return int(model.get_sentence_embedding_dimension())


def _features(out):
    """get_*_features: a tensor (transformers 4), or an output whose pooler_output is it (5)."""
    return out.pooler_output if hasattr(out, "pooler_output") else out


def _image(x):
    from PIL import Image

    return x if isinstance(x, Image.Image) else Image.frombytes("RGB", (x[0], x[1]), x[2])


def run_task(kind: str, model, inputs: list, opts: dict) -> list:
    """hf_tasks' ``kind`` on a loaded (model, processor): one result per input."""
    from . import hf_tasks

    m, processor = model
    if kind == "detect":
        return hf_tasks.detect(m, processor, [_image(x) for x in inputs], **opts)
    if kind == "caption":
        return hf_tasks.caption(m, processor, [_image(x) for x in inputs], **opts)
    if kind == "transcribe":
        return hf_tasks.transcribe(m, processor, inputs, **opts)
    raise ValueError(f"no local model task {kind!r}")


def embed(kind: str, model, inputs: list) -> list:
    """Unit vectors (lists of floats), one per input, in order."""
    import torch

    with torch.inference_mode():
        if kind == "sentence_transformer":
            return model.encode(inputs, normalize_embeddings=True, show_progress_bar=False,
                                convert_to_numpy=True).tolist()
        clip, processor = model
        if kind == "clip_image":
            pixels = processor(images=[_image(x) for x in inputs], return_tensors="pt")["pixel_values"]
            vecs = _features(clip.get_image_features(pixel_values=pixels))
        elif kind == "clip_text":
            limit = int(getattr(clip.config.text_config, "max_position_embeddings", 77))
            t = processor.tokenizer(inputs, padding=True, truncation=True, max_length=limit, return_tensors="pt")
            vecs = _features(clip.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"]))
        else:
            raise ValueError(f"no local model kind {kind!r}")
        return torch.nn.functional.normalize(vecs, dim=-1).tolist()
