"""Where local model weights live (``pixelgres.model_dir``), and which of an expression's calls
name a local model -- so a computed column over a model that is not installed fails when it is
added, not on each row (docs/models.md).

A model is a directory, as ``save_pretrained`` writes it, at ``<model_dir>/<name>`` (or
``<model_dir>/<org>/<name>``), or in the Hugging Face cache layout
(``models--<org>--<name>/snapshots/<rev>``). Names are letters, digits, '.', '_', '-',
optionally ``org/name``; nothing else reaches the file system.
"""
from __future__ import annotations

import contextlib
import os
import re

from .media.gucs import setting

# SQL functions whose ``model`` argument names a directory in pixelgres.model_dir, with its
# default (as the function's SQL declaration has it: tests/test_clip.py checks they agree)
LOCAL_MODEL_FUNCTIONS = {"clip_image": "clip-vit-base-patch32", "clip_text": "clip-vit-base-patch32",
                         "detect": "yolos-tiny", "caption": "blip-image-captioning-base",
                         "transcribe": "whisper-tiny"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127})?")
_CALL = re.compile(r"\bpxt\.(" + "|".join(LOCAL_MODEL_FUNCTIONS) + r")\(")
_LITERAL = re.compile(r"'((?:[^']|'')*)'(?:::text)?")


def model_path(name: str) -> str:
    """The directory of model ``name``, or a ValueError saying how to install it."""
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
    with contextlib.suppress(OSError), open(os.path.join(hub, "refs", "main")) as f:
        return os.path.join(snaps, f.read().strip())
    try:
        revs = os.listdir(snaps)
    except OSError:
        return None
    return os.path.join(snaps, revs[0]) if len(revs) == 1 else None


def named_models(deparsed: str) -> list[tuple[str, str]]:
    """(function, model name) of each local-model call in ``deparsed`` -- PostgreSQL's own
    deparse of an expression, so calls are ``pxt.fn(arg, 'name'::text)`` or
    ``pxt.fn(arg, model => 'name'::text)``, and an omitted model is the default. A model given
    by a non-constant (a column) cannot be known here and is left to the rows."""
    out = []
    for m in _CALL.finditer(deparsed):
        fn = m.group(1)
        args = _top_level_args(deparsed, m.end())
        model = next((a.split("=>", 1)[1].strip() for a in args if a.startswith("model =>")), None)
        if model is None and len(args) > 1 and "=>" not in args[1]:
            model = args[1]
        if model is None:
            out.append((fn, LOCAL_MODEL_FUNCTIONS[fn]))
        elif lit := _LITERAL.fullmatch(model):
            out.append((fn, lit.group(1).replace("''", "'")))
    return out


def check(deparsed: str) -> None:
    """ValueError naming the first model an expression needs that is not installed."""
    for _, name in named_models(deparsed):
        model_path(name)


def _top_level_args(text: str, start: int) -> list[str]:
    """The comma-separated arguments of the call whose '(' ends at ``start``."""
    args, depth, i, cur, quote = [], 0, start, [], None
    while i < len(text):
        ch = text[i]
        if quote:
            cur.append(ch)
            if ch == quote:
                if i + 1 < len(text) and text[i + 1] == quote:  # '' or "" inside quotes
                    cur.append(text[i + 1])
                    i += 1
                else:
                    quote = None
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch == "(":
            depth += 1
            cur.append(ch)
        elif ch == ")":
            if depth == 0:
                args.append("".join(cur).strip())
                return [a for a in args if a]
            depth -= 1
            cur.append(ch)
        elif ch == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    return [a for a in args if a]
