"""Short texts of a call for a table cell: the exception's ``Type: message`` line."""
from __future__ import annotations

import re

SUMMARY_CHARS = 200  # a summary longer than this is cut, with a marker

_HEAD = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")


def _bounded(text: str, limit: int = SUMMARY_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def exception_summary(text: str | None, type_name: str | None = None) -> str:
    """``ExceptionType: first line of its message`` from a stored traceback (the last
    exception of a chain, as Python prints it last), bounded to SUMMARY_CHARS; ``""``
    for none. The type is shown without its module. ``type_name`` (the stored
    exception type) finds the line when the message runs over several lines."""
    if not text:
        return ""
    lines = text.rstrip().splitlines()
    short_type = type_name.rsplit(".", 1)[-1] if type_name else None
    found = None
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if not line or line[0].isspace():
            if found is not None or short_type is None:
                break
            continue
        m = _HEAD.match(line)
        if m and (short_type is None or m["type"].rsplit(".", 1)[-1] == short_type):
            found = m
            if short_type is not None:
                break
        elif short_type is None:
            break
    if found is None:
        last = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
        return _bounded(last)
    kind = found["type"].rsplit(".", 1)[-1]
    message = (found["message"] or "").strip()
    return _bounded(f"{kind}: {message}" if message else kind)
