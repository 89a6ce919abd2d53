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

Workers outside the backend (``pixelgres worker --ray``) use the same three passes split
over two statements: ``collected()`` hands the claimed rows' calls out (``to_wire``), the
worker runs them through the same ``REGISTRY`` functions, and ``preload()`` puts the
results back for the write-back statement, where ``run()`` takes them instead of computing.
"""
import base64
import decimal

import plpy

REGISTRY: dict = {}  # name -> callable(list[tuple]) -> list[result | Exception]
_STATE: dict = {}
_PRELOADED: dict = {}  # {"stamp": ..., "results": {name: {key: result}}, "used": n, "computed": n}


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
    pre = _PRELOADED["results"] if _PRELOADED.get("stamp") == st["stamp"] else {}
    for name, pending in st["pending"].items():
        given = pre.get(name, {})
        hits = {k: given[k] for k in pending if k in given}
        st["results"].setdefault(name, {}).update(hits)
        if pre:
            _PRELOADED["used"] += len(hits)
            _PRELOADED["computed"] += len(pending) - len(hits)
        keys = [k for k in pending if k not in hits]
        if not keys:
            n += len(hits)
            continue
        try:
            out = _run(name, [pending[k] for k in keys])
        except Exception as e:  # the whole batch failed: every row gets the error
            if getattr(e, "sqlstate", None) == "57014":  # cancel / statement_timeout: stop, not row errors
                raise
            out = [e] * len(keys)
        if len(out) != len(keys):
            out = [RuntimeError(f"batched function {name} returned {len(out)} results for {len(keys)} inputs")] * len(keys)
        st["results"].setdefault(name, {}).update(zip(keys, out))
        n += len(keys) + len(hits)
    st["pending"] = {}
    st["mode"] = "serve"
    return n


def end() -> None:
    _STATE.clear()


# --- workers outside the backend ---------------------------------------------------------------
def collected() -> list:
    """The calls collected so far, as [name, module, key, args] (args in ``to_wire`` form): what
    a worker outside the backend computes. The module is where the function is registered."""
    st = _active()
    if st is None:
        return []
    return [[name, REGISTRY[name].__module__, k, to_wire(list(a))]
            for name, pending in st["pending"].items() for k, a in pending.items()]


def execute(name: str, args: list) -> list:
    """One result or exception per argument tuple, as run() gets them: a worker outside the
    backend computing a claimed batch with the same implementation."""
    try:
        out = _run(name, args)
    except Exception as e:  # the whole batch failed: every row gets the error
        out = [e] * len(args)
    if len(out) != len(args):
        out = [RuntimeError(f"batched function {name} returned {len(out)} results for {len(args)} inputs")] * len(args)
    return out


def preload(calls: list) -> None:
    """Results computed outside the backend, [name, key, result wire] each, for this statement's
    batches: run() takes them instead of computing (and counts what it still had to compute)."""
    results: dict = {}
    for name, key, w in calls:
        results.setdefault(name, {})[key] = from_wire(w)
    _PRELOADED.clear()
    _PRELOADED.update(stamp=_stamp(), results=results, used=0, computed=0)


def preload_stats() -> dict:
    """{"used": preloaded results taken, "computed": calls run here instead} for this statement."""
    if _PRELOADED.get("stamp") != _stamp():
        return {"used": 0, "computed": 0}
    return {"used": _PRELOADED["used"], "computed": _PRELOADED["computed"]}


def to_wire(v):
    """A call's argument or result as JSON data: bytes and decimals tagged, an exception as
    {"$error": class name, "message", "status", "sqlstate"} (its class made at run time does
    not pickle or serialise)."""
    if isinstance(v, BaseException):
        return {"$error": type(v).__name__, "message": str(v), "status": getattr(v, "status", None),
                "sqlstate": getattr(v, "sqlstate", None)}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, decimal.Decimal):
        return {"$decimal": str(v)}
    if isinstance(v, (list, tuple)):
        return [to_wire(x) for x in v]
    if isinstance(v, dict):
        return {"$dict": [[k, to_wire(x)] for k, x in v.items()]}
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    raise TypeError(f"a batched call's value of type {type(v).__name__} cannot leave the backend")


_ERRORS: dict = {}


def _error(name: str, message: str, status, sqlstate):
    """An exception that reads like the original ("Name: message" in the row's error)."""
    if name in ("ValueError", "TypeError", "RuntimeError"):
        e = {"ValueError": ValueError, "TypeError": TypeError, "RuntimeError": RuntimeError}[name](message)
    else:
        if not name.isidentifier():
            name = "RemoteWorkerError"
        cls = _ERRORS.get(name)
        if cls is None:
            cls = _ERRORS[name] = type(name, (Exception,), {"__module__": "builtins"})
        e = cls(message)
    e.status = status
    if sqlstate:
        e.sqlstate = sqlstate
    return e


def from_wire(w):
    if isinstance(w, list):
        return [from_wire(x) for x in w]
    if isinstance(w, dict):
        if "$error" in w:
            return _error(str(w["$error"]), str(w.get("message")), w.get("status"), w.get("sqlstate"))
        if "$bytes" in w:
            return base64.b64decode(w["$bytes"])
        if "$decimal" in w:
            return decimal.Decimal(w["$decimal"])
        if "$dict" in w:
            return {k: from_wire(x) for k, x in w["$dict"]}
        raise ValueError(f"not a batched call's value: {sorted(w)}")
    return w
