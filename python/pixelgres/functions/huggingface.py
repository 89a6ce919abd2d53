"""Local embedding models (SQL ``pxt.sentence_transformer``, ``pxt.clip_image`` /
``pxt.clip_text``): ``sentence_transformer.using(model='all-MiniLM-L6-v2')`` or
``clip.using(model_id='clip-vit-base-patch32')`` for ``add_embedding_index`` (an image column's
CLIP index embeds text queries with the text tower); ``clip(t.image, model_id=...)`` and
``clip_text(t.caption, model_id=...)`` in computed columns."""
from __future__ import annotations

from ..client import types as T
from ..client.udf import SqlFunction

sentence_transformer = SqlFunction("sentence_transformer", T.Type("vector"),
                                   doc="Embedding vector of a text from a local sentence-transformers model",
                                   aliases={"model_id": "model"})

clip = SqlFunction("clip_image", T.Type("vector"), aliases={"model_id": "model"}, query_function="clip_text",
                   doc="CLIP embedding of an image (weights from pixelgres.model_dir); texts: clip_text")
clip_text = SqlFunction("clip_text", T.Type("vector"), aliases={"model_id": "model"},
                        doc="CLIP embedding of a text, in the space of clip (images)")
