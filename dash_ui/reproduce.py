"""The drill-down's **Reproduce** snippet: Python that calls a recorded call's function
with its captured inputs. A stored repr that is a valid literal is used as is; a masked
value (``<HASHED:…>``) or any other repr becomes a named placeholder to fill in."""
from __future__ import annotations

import ast
from typing import Any

_RESOLVE = '''import importlib


def _resolve(dotted):
    """module.qualname -> the function (the module is the longest importable prefix)."""
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return getattr(obj, "__wrapped__", obj)
    raise ImportError(dotted)
'''


def _literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def snippet(call: dict[str, Any]) -> str:
    """The snippet for ``call`` (as returned by ``TraceQueries.call``)."""
    lines = [f"# Reproduce {call['process']} (span {call['span_id']}, "
             f"{call['status']} at {call['timestamp']})", _RESOLVE]
    placeholders, args = [], []
    for v in call["values"]:
        if v["data_type"] != "INPUT" or not v["data"].isidentifier():
            continue
        name, text = v["data"], v["data_value"]
        if text.startswith("<HASHED:") or not _literal(text):
            why = "masked in the store" if text.startswith("<HASHED:") else \
                f"stored repr is not a literal: {text[:200]!r}"
            placeholder = f"{name.upper()}_VALUE"
            placeholders.append(f"{placeholder} = None  # TODO {why}")
            args.append(f"{name}={placeholder}")
        else:
            args.append(f"{name}={text}")
    lines += placeholders
    if placeholders:
        lines.append("")
    lines.append(f"fn = _resolve({call['process']!r})")
    lines.append(f"result = fn({', '.join(args)})")
    lines.append("print(repr(result))")
    return "\n".join(lines) + "\n"
