"""Local models from ``pixelgres.model_dir``: finding one by name, and keeping a bounded few
loaded per backend (docs/models.md).

Weights come only from that directory (superuser-only): a directory per model, as
``save_pretrained`` writes it, or in the Hugging Face cache layout
(``models--org--name/snapshots/<rev>``); ``pixelgres models add NAME PATH`` installs one.
Nothing is ever downloaded. A model loads once per backend, lazily; at most
``pixelgres.max_loaded_models`` stay loaded, whatever their kind (CLIP, detection,
captions, speech), the least recently used going first.
"""
from __future__ import annotations

import collections
import os
import re
import time

from ..core import deps
from ..core.errors import MediaError, sql_media_error
from ..media.gucs import setting
from .embedding_models import _stat, _threads_env

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127})?")
_LOADED: collections.OrderedDict = collections.OrderedDict()  # (kind, path) -> loaded model


def model_path(name: str) -> str:
    """The directory of model ``name`` under pixelgres.model_dir, or a ValueError saying how to
    install it. Names are plain (``clip-vit-base-patch32``) or ``org/name``; nothing else
    reaches the file system."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"invalid model name {name!r}: letters, digits, '.', '_', '-', optionally org/name")
    root = setting("pixelgres.model_dir")
    if not root:
        raise ValueError(f"model {name!r} is not installed: pixelgres.model_dir is not set (a superuser "
                                "sets it to a directory of models; `pixelgres models add NAME PATH` installs one)")
    org, _, short = name.rpartition("/")
    candidates = [os.path.join(root, name)]
    if org:
        candidates.append(os.path.join(root, short))
    for hub in ([f"models--{org}--{short}"] if org else [f"models--openai--{short}", f"models--{short}"]):
        candidates.append(_snapshot(os.path.join(root, hub)))
    for c in candidates:
        if c and os.path.isfile(os.path.join(c, "config.json")):
            return c
    raise ValueError(f"model {name!r} is not installed in pixelgres.model_dir ({root}): put the model's "
                            f"directory (config.json, weights, tokenizer and processor files) at {root}/{short}, "
                            f"e.g. with `pixelgres models add {short} PATH`")


def _snapshot(hub: str) -> str | None:
    """The snapshot a Hugging Face cache directory's refs/main names, or its only one."""
    snaps = os.path.join(hub, "snapshots")
    try:
        with open(os.path.join(hub, "refs", "main")) as f:
            return os.path.join(snaps, f.read().strip())
    except OSError:
        pass
    try:
        revs = os.listdir(snaps)
    except OSError:
        return None
    return os.path.join(snaps, revs[0]) if len(revs) == 1 else None


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
