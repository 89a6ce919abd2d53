"""AWS Bedrock (SQL ``pxt.bedrock_converse``, ``pxt.bedrock_embed``): region
``pixelgres.bedrock_region`` or AWS_REGION; credentials from the session's
``pixelgres.bedrock_aws_*`` settings or the server's AWS credential chain."""
from __future__ import annotations

from . import _remote


def converse(messages, *, model_id: str, system: str | None = None, inference_config: dict | None = None,
             additional_model_request_fields: dict | None = None, **kwargs):
    """The full Converse response (JSON): ``.output.message.content[0].text`` is the answer."""
    extra = {"additionalModelRequestFields": additional_model_request_fields} if additional_model_request_fields else None
    return _remote.chat("bedrock_converse", messages, (), extra,
                        dict(model=model_id, system=system, inference_config=inference_config, **kwargs))


embed = _remote.Embeddings("bedrock_embed", doc="Embedding vector of a text from a Titan model on Bedrock",
                           params=False)
