"""Local embedding models (SQL ``pxt.sentence_transformer``, the embedding-index issue):
``sentence_transformer.using(model='all-MiniLM-L6-v2')`` for ``add_embedding_index``."""
from __future__ import annotations

from ..client import types as T
from ..client.udf import SqlFunction

sentence_transformer = SqlFunction("sentence_transformer", T.Type("vector"),
                                   doc="Embedding vector of a text from a local sentence-transformers model",
                                   aliases={"model_id": "model"})
