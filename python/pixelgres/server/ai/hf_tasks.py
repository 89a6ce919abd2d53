"""Object detection, image captioning and speech transcription with local Hugging Face models:
pure inference on a (model, processor) pair already loaded.

* One batch per call. The backend hands over a statement's rows together (as it does for
  embeddings), so every function takes a list and runs the model once on all of it: a forward
  pass or a ``generate`` call costs about the same for one row as for dozens on CPU, and per-row
  Python and torch overhead would dominate a scan.
* Pure. No plpy, no database, nothing else from pixelgres; torch and numpy are imported inside the
  functions. The same code runs in a backend, in a worker process and in unit tests, while the
  glue (finding a model under pixelgres.model_dir, keeping a few loaded, SQL) lives elsewhere.
* Local only. ``load`` reads what ``save_pretrained`` wrote, with ``local_files_only=True``:
  nothing is downloaded.

Inputs are the caller's to decode: PIL images, and mono float32 samples in [-1, 1] at the
model's sampling rate (16 kHz for Whisper). Resampling is not done here.
"""
from __future__ import annotations

# task -> (transformers model class, processor class)
_TASKS = {
    "detect": ("AutoModelForObjectDetection", "AutoImageProcessor"),
    "caption": ("AutoModelForImageTextToText", "AutoProcessor"),
    "transcribe": ("AutoModelForSpeechSeq2Seq", "AutoProcessor"),
}
MAX_NEW_TOKENS = 512


def load(task: str, path: str):
    """(model, processor) for ``task`` from the directory ``path``, the model in eval mode.
    ValueError if the directory holds no such model (empty, broken, or another task's model)."""
    if task not in _TASKS:
        raise ValueError(f"unknown task {task!r}: one of {', '.join(_TASKS)}")
    import transformers

    model_cls, processor_cls = (getattr(transformers, name) for name in _TASKS[task])
    try:
        model = model_cls.from_pretrained(path, local_files_only=True)
        processor = processor_cls.from_pretrained(path, local_files_only=True)
    except Exception as e:  # OSError (missing files), ValueError (unrecognized config), ...
        raise ValueError(f"{path} does not load as a {task} model: {type(e).__name__}: {e}") from e
    model.eval()
    return model, processor


def _check_max_new_tokens(n) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_NEW_TOKENS:
        raise ValueError(f"max_new_tokens must be an integer from 1 to {MAX_NEW_TOKENS}, not {n!r}")


def _rgb(images: list) -> list:
    return [im if im.mode == "RGB" else im.convert("RGB") for im in images]


def detect(model, processor, images: list, threshold: float = 0.5, top_k: int | None = None) -> list[list[dict]]:
    """Objects in each image: per image a list of ``{"label", "score", "box": [x0, y0, x1, y1]}``
    (pixels of that image, clipped to it), best score first, scores above ``threshold``, at most
    ``top_k``."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a number from 0 to 1, not {threshold!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None, not {top_k!r}")
    if not images:
        return []
    import torch

    images = _rgb(images)
    sizes = [(im.height, im.width) for im in images]
    inputs = processor(images=images, return_tensors="pt")
    with torch.inference_mode():
        outputs = model(**inputs)
        results = processor.post_process_object_detection(outputs, threshold=float(threshold), target_sizes=sizes)
    id2label = model.config.id2label
    found = []
    for (h, w), r in zip(sizes, results):
        limits = (float(w), float(h), float(w), float(h))
        rows = sorted(zip(r["scores"].tolist(), r["labels"].tolist(), r["boxes"].tolist()), key=lambda t: -t[0])
        found.append([{"label": id2label.get(label, str(label)), "score": round(score, 4),
                       "box": [round(min(max(v, 0.0), limit), 1) for v, limit in zip(box, limits)]}
                      for score, label, box in rows[:top_k]])
    return found


def caption(model, processor, images: list, max_new_tokens: int = 30, prompt: str | None = None) -> list[str]:
    """A caption per image, at most ``max_new_tokens`` generated tokens each. With ``prompt``
    the model continues that text (BLIP's conditional captioning: the caption starts with it)."""
    _check_max_new_tokens(max_new_tokens)
    if not images:
        return []
    import torch

    images = _rgb(images)
    text = [prompt] * len(images) if prompt else None
    inputs = processor(images=images, text=text, return_tensors="pt")
    with torch.inference_mode():
        ids = model.generate(**inputs, max_new_tokens=max_new_tokens)
    return [t.strip() for t in processor.batch_decode(ids, skip_special_tokens=True)]


def transcribe(model, processor, audios: list, sampling_rate: int = 16000, max_new_tokens: int = 128) -> list[dict]:
    """Speech to text: per audio ``{"text", "segments": [{"start", "end", "text"}]}``.

    Whisper hears 30 s at a time (its feature extractor pads or cuts to that), so each audio is
    cut into 30 s windows, every window of every audio goes through one ``generate`` call, and
    each window is a segment (seconds; the last ends with the audio). Words on a window boundary
    may be cut or repeated: there is no overlap or timestamp-based stitching. At most
    ``max_new_tokens`` tokens per window, fewer if the decoder cannot hold that many after its
    4 prompt tokens (``max_target_positions``: 448 for Whisper)."""
    _check_max_new_tokens(max_new_tokens)
    extractor = getattr(processor, "feature_extractor", processor)
    expected = extractor.sampling_rate
    if sampling_rate != expected:
        raise ValueError(f"audio sampled at {sampling_rate} Hz but this model takes {expected} Hz: "
                         "resample it first")
    if not audios:
        return []
    import numpy as np
    import torch

    window = getattr(extractor, "n_samples", 30 * expected)
    chunks, spans = [], []  # spans[i]: (start, end) in seconds of audio i's windows
    for i, audio in enumerate(audios):
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"audio {i} has shape {audio.shape}: expected 1-D mono samples")
        if audio.size == 0:
            raise ValueError(f"audio {i} is empty")
        starts = range(0, audio.size, window)
        chunks += [audio[s:s + window] for s in starts]
        spans.append([(round(s / expected, 3), round(min(s + window, audio.size) / expected, 3)) for s in starts])

    features = extractor(chunks, sampling_rate=expected, return_tensors="pt").input_features
    limit = getattr(model.config, "max_target_positions", None)
    kwargs = {"max_new_tokens": min(max_new_tokens, limit - 4) if limit else max_new_tokens}
    if model.config.model_type == "whisper":
        # no timestamp tokens, and one decoding pass per window: Whisper's generate otherwise
        # decodes a window again from any timestamp token it emits, even with timestamps off
        kwargs.update(return_timestamps=False, force_unique_generate_call=True)
    with torch.inference_mode():
        ids = model.generate(features.to(model.device, model.dtype), **kwargs)
    texts = iter(t.strip() for t in processor.batch_decode(ids, skip_special_tokens=True))
    results = []
    for own in spans:
        segments = [{"start": start, "end": end, "text": next(texts)} for start, end in own]
        results.append({"text": " ".join(s["text"] for s in segments if s["text"]), "segments": segments})
    return results
