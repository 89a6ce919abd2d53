"""Batched evaluation: one statement's calls of a batched function, made together.

A batched SQL function's body calls ``call(name, args)``. Outside a batch it computes just
that call. The statement-level trigger of a table with batched columns runs three passes:
``begin()`` puts the backend in *collect* mode and evaluates the column's expression over
the statement's rows, so each call only records its arguments; ``run()`` hands all distinct
argument tuples to the function's batch implementation at once (which may run them
concurrently) and switches to *serve* mode; the write-back UPDATE evaluates the expression
again and each call returns its precomputed result (or raises its own error, so per-row
error handling works as for any function). Calls nested anywhere in the expression work.
A batch is bound to the statement that began it: a stale state is ignored.
"""
import plpy

REGISTRY: dict = {}  # name -> callable(list[tuple]) -> list[result | Exception]
_STATE: dict = {}


def batched(name: str):
    def deco(fn):
        REGISTRY[name] = fn
        return fn
    return deco


def _stamp() -> str:
    return plpy.execute("SELECT statement_timestamp()::text AS s")[0]["s"]


def _key(args: tuple) -> str:
    return repr(args)


def _active():
    if _STATE.get("mode") and _STATE.get("stamp") == _stamp():
        return _STATE
    _STATE.clear()
    return None


def _as_cancel(e: BaseException):
    """A cancel seen inside a batched function (its QueryCanceled) as an SQL error with
    SQLSTATE 57014, which plpgsql's WHEN OTHERS does not catch: the statement ends."""
    cls = type("QueryCanceled", (plpy.Error,), {"__module__": "builtins"})
    err = cls(str(e))
    err.sqlstate = "57014"
    return err


def _run(name: str, batch: list):
    try:
        return REGISTRY[name](batch)
    except BaseException as e:
        if type(e).__name__ == "QueryCanceled" or getattr(e, "sqlstate", None) == "57014":
            raise _as_cancel(e) from None
        raise


def call(name: str, args: tuple):
    st = _active() if _STATE else None
    if st is None:
        r = _run(name, [args])[0]
    elif st["mode"] == "collect":
        st["pending"].setdefault(name, {})[_key(args)] = args
        return None
    else:
        results = st["results"].get(name, {})
        k = _key(args)
        r = results[k] if k in results else _run(name, [args])[0]
    if isinstance(r, BaseException):
        raise r
    return r


def begin() -> None:
    _STATE.clear()
    _STATE.update(mode="collect", stamp=_stamp(), pending={}, results={})


def run() -> int:
    """Evaluate everything collected; returns the number of distinct calls made."""
    st = _active()
    if st is None:
        return 0
    n = 0
    for name, pending in st["pending"].items():
        keys = list(pending)
        try:
            out = _run(name, [pending[k] for k in keys])
        except Exception as e:  # the whole batch failed: every row gets the error
            if getattr(e, "sqlstate", None) == "57014":  # cancel / statement_timeout: stop, not row errors
                raise
            out = [e] * len(keys)
        if len(out) != len(keys):
            out = [RuntimeError(f"batched function {name} returned {len(out)} results for {len(keys)} inputs")] * len(keys)
        st["results"].setdefault(name, {}).update(zip(keys, out))
        n += len(keys)
    st["pending"] = {}
    st["mode"] = "serve"
    return n


def end() -> None:
    _STATE.clear()
