"""The brief's reference decorator (appendix 7.2), as written there, with the
``queue.Queue`` it puts to and the ``_safe_repr`` it calls. Benchmarks only."""
import datetime
import functools
import inspect
import queue
import random
import time
import traceback

core_queue: "queue.Queue" = queue.Queue()


def _safe_repr(name, value, mask):
    if name in mask:
        return "<HASHED>"
    try:
        return repr(value)[:1000]
    except Exception:
        return "<unrepr-able>"


def monitor(process_group: str, sample: float = 1.0, mask=(), log_inputs=True, log_outputs=True,
            otel_span=False):
    def deco(fn):
        qual = f"{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        def wrap(*a, **kw):
            if sample < 1.0 and random.random() > sample:
                return fn(*a, **kw)
            start = time.time(); exc = None
            try:
                res = fn(*a, **kw); return res
            except Exception:
                exc = traceback.format_exc(); raise
            finally:
                dur = (time.time() - start) * 1e3
                now = datetime.datetime.utcnow().isoformat(' ', 'seconds')
                core_queue.put(("process", now, qual, process_group,
                                "ERR" if exc else "OK", dur, exc))
                if log_inputs:
                    for n, v in inspect.signature(fn).bind_partial(*a, **kw).arguments.items():
                        core_queue.put(("data", now, qual, n, "INPUT",
                                        _safe_repr(n, v, mask), "ERR" if exc else "OK", exc))
                if log_outputs and 'res' in locals():
                    core_queue.put(("data", now, qual, "return", "OUTPUT",
                                    _safe_repr("return", res, mask), "ERR" if exc else "OK", exc))
        return wrap
    return deco


def drain() -> None:
    while True:
        try:
            core_queue.get_nowait()
        except queue.Empty:
            return
