"""The batch implementation of ``pxt_test.batch_probe(text)``, a batched function for tests
(batch_probe.sql, installed into test databases by tests/conftest.py, never by the extension):
it returns its input tagged with the size of the batch it was evaluated in, and inputs
starting with 'fail' raise, so tests see that a statement's rows arrive as one batch and that
per-row errors follow the column's on_error."""
from pixelgres.server.core.batch import batched

SIZES: list = []


@batched("batch_probe")
def batch_probe(batch: list[tuple]) -> list:
    SIZES.append(len(batch))
    out = []
    for (text,) in batch:
        if text is not None and text.startswith("fail"):
            out.append(ValueError(f"batch_probe refuses {text!r}"))
        else:
            out.append(None if text is None else f"{text}|batch={len(batch)}")
    return out
