"""Object detection, image captions and speech to text with local models (``pxt.detect``,
``pxt.caption``, ``pxt.transcribe``; docs/models.md).

The models run through transformers on torch CPU (``hf_tasks``: the inference itself, free of
the database, so a worker could run it too); weights come from ``pixelgres.model_dir``
(``local_models``). All three are batched: a statement's rows go through the model in chunks,
per distinct (model, options); an input that does not decode is that row's error. With
``pixelgres.model_server`` set, the backend decodes and the shared model server runs the model.
"""
from __future__ import annotations

import collections

from ..core.batch import batched
from ..model_store import model_path
from . import model_client
from .embedding_models import _check_interrupts, _stat
from .local_models import loaded, row_error

CHUNK = {"detect": 16, "caption": 16, "transcribe": 8}


def _model(task: str, name: str):
    from . import hf_tasks

    return loaded(task, name, lambda path: hf_tasks.load(task, path))


def _wire(x):
    """A decoded input as the model server takes it: images as (width, height, RGB bytes)."""
    return (x.width, x.height, x.tobytes()) if hasattr(x, "tobytes") and hasattr(x, "width") else x


def _run(task: str, batch: list[tuple], read, options) -> list:
    """batch: distinct (input, model, *options); ``read(input)`` decodes one input (its error is
    that row's), ``options(*options)`` is the keyword arguments of hf_tasks.<task>."""
    from . import inference

    out: list = [None] * len(batch)
    groups: dict = collections.defaultdict(list)
    for i, (_, model, *opts) in enumerate(batch):
        groups[(model, *opts)].append(i)
    shared = model_client.configured()
    for (name, *opts), idx in groups.items():
        kwargs = options(*opts)
        try:
            if shared:
                path = model_path(name)

                def infer(inputs):
                    return model_client.task(task, path, [_wire(x) for x in inputs], kwargs)
            else:
                model = _model(task, name)

                def infer(inputs):
                    return inference.run_task(task, model, inputs, kwargs)
        except Exception as e:
            for i in idx:
                out[i] = e
            continue
        s = _stat(f"{task}/{name}")
        for c in range(0, len(idx), CHUNK[task]):
            if c:
                _check_interrupts()
            ok, inputs = [], []
            for i in idx[c:c + CHUNK[task]]:
                try:
                    inputs.append(read(batch[i][0]))
                    ok.append(i)
                except Exception as e:
                    out[i] = row_error(e)
            if not inputs:
                continue
            try:
                results = infer(inputs)
            except model_client.ModelServerError:
                raise  # not reachable: the statement's error, as for CLIP
            except Exception as e:  # options the model refuses: every row of the chunk says so
                if getattr(e, "sqlstate", None) == "57014":
                    raise  # canceled while the server worked: the statement ends
                results = [e] * len(inputs)
            for i, r in zip(ok, results):
                out[i] = r
        s["batches"] += 1
        s["texts"] += len(idx)
    return out


def _image(uri: str):
    from ..media import image  # lazy: Pillow loads for image inputs only

    return image.load(uri)[0].convert("RGB")


def _audio(uri: str):
    from ..media import audio

    return audio.mono(uri, 16000)


@batched("detect")
def detect_batch(batch: list[tuple]) -> list:
    """(image, model, threshold, top_k) -> [{"label", "score", "box": [x0, y0, x1, y1]}]"""
    return _run("detect", batch, _image, lambda threshold, top_k: {"threshold": threshold, "top_k": top_k})


@batched("caption")
def caption_batch(batch: list[tuple]) -> list:
    """(image, model, max_tokens) -> text"""
    return _run("caption", batch, _image, lambda max_tokens: {"max_new_tokens": max_tokens})


@batched("transcribe")
def transcribe_batch(batch: list[tuple]) -> list:
    """(audio, model, max_tokens) -> {"text", "segments": [{"start", "end", "text"}]}"""
    return _run("transcribe", batch, _audio, lambda max_tokens: {"sampling_rate": 16000, "max_new_tokens": max_tokens})
