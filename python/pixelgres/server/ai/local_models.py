"""Local models from ``pixelgres.model_dir`` (found by ``model_store``), kept loaded, a
bounded few per backend (docs/models.md). Nothing is ever downloaded. A model loads once per
backend, lazily; at most ``pixelgres.max_loaded_models`` stay loaded, whatever their kind
(CLIP, detection, captions, speech), the least recently used going first.
"""
from __future__ import annotations

import collections
import os
import time

from ..core import deps
from ..core.errors import MediaError, sql_media_error
from ..media.gucs import setting
from ..model_store import model_path
from .embedding_models import _stat, _threads_env

_LOADED: collections.OrderedDict = collections.OrderedDict()  # (kind, path) -> loaded model


def loaded(kind: str, name: str, load):
    """The model ``name`` loaded by ``load(path)`` (a (model, processor) pair, say), once per
    backend: kept while it is among the pixelgres.max_loaded_models most recently used.
    ``kind`` names the function family in pxt.embedding_models() ("clip", "detect"...)."""
    path = model_path(name)
    key = (kind, path)
    hit = _LOADED.get(key)
    if hit is not None:
        _LOADED.move_to_end(key)
        return hit
    _threads_env()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    deps.need("torch").set_num_threads(int(setting("pixelgres.model_threads")))
    deps.need("transformers").logging.set_verbosity_error()  # no per-call warnings in the server log
    limit = int(setting("pixelgres.max_loaded_models"))
    while len(_LOADED) >= limit:
        _LOADED.popitem(last=False)  # the least recently used model goes (and its memory with it)
    t = time.perf_counter()
    try:
        model = load(path)
    except ValueError as e:  # the loader's own words (hf_tasks names the directory and the task)
        raise ValueError(f"model {name!r}: {e}") from None
    except Exception as e:  # a broken or foreign model directory
        raise ValueError(f"model {name!r} in {path} does not load as a {kind} model: {type(e).__name__}: {e}") from None
    s = _stat(f"{kind}/{name}")
    s["load_seconds"] = round(time.perf_counter() - t, 3)
    s["loads"] += 1
    _LOADED[key] = model
    return model


def in_memory() -> list[tuple[str, str]]:
    """(kind, directory) of the models this backend holds, least recently used first."""
    return list(_LOADED)


def row_error(e: Exception) -> Exception:
    """A row's input error as the row's SQL error: a bad media value reads "MediaError: ...",
    SQLSTATE 22023, as for the unbatched functions."""
    return sql_media_error(str(e)) if isinstance(e, MediaError) else e
