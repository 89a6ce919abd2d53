"""The loopback OpenAI-compatible server and its pytest fixtures (pixelgres.testing.openai_server)."""
from pixelgres.testing.openai_server import (COLOURS, Fault, OpenAIServer, Record, describe_image,  # noqa: F401
                                             max_overlap, openai_server, openai_server_session,
                                             trigram_embedding)
