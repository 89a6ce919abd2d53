"""Waiting for a condition another process makes true (files appear, a server accepts
connections), for tests and benches: the one place that polls, with a deadline that only
turns a hang into a clear failure -- never a pause that hopes something has happened."""
from __future__ import annotations

import time


def wait_until(condition, what: str, timeout: float = 60.0, every: float = 0.02):
    """Return ``condition()``'s first truthy value; AssertionError naming ``what`` on timeout.

    Exceptions from ``condition`` count as "not yet" (a server still recovering)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - reported if the deadline passes
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                                 + (f" (last error: {last})" if last else ""))
        time.sleep(every)
