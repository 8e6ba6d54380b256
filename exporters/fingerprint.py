"""An error's group key and title: ``fingerprint`` and ``normalise_message``.

A failed call's group is keyed by its process, its exception's fully-qualified type
and the top in-application frames of its traceback (file and function, never line
numbers: an edit above the failing line must not make a new group). The frames are
parsed from Python's formatted traceback text (``File "...", line N, in func``), the
form both the decorator's records and OTel's ``exception.stacktrace`` store; a failure
with no parsable frame (an OTLP span with only a message) is keyed on process and
type alone.

The message is not part of the key (it varies with the data: ids, amounts, times);
normalised, it is the group's title: ``ShortType: message with <n>, <hex>, <str>…``.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import sysconfig

MAX_FRAMES = 3          # innermost in-application frames in the key
MAX_MESSAGE = 200       # characters of a normalised message
MAX_TITLE = 240

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]*)", line \d+, in (?P<func>.+?)\s*$')
_HEADER = "Traceback (most recent call last):"

# This package's own folders: frames there are the monitoring's, not the application's.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_INTERNAL_DIRS = tuple(os.path.join(_ROOT, name) + os.sep
                       for name in ("otel_monitor", "exporters", "dash_ui"))
# ... but for its demo workload, which stands for an application.
_APPLICATION_FILES = frozenset({os.path.join(_ROOT, "otel_monitor", "demo.py")})
_STDLIB_DIRS = tuple({os.path.abspath(p) + os.sep for p in (
    sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib")) if p})
# A traceback written on another machine: its stdlib and packages by the folder names.
_FOREIGN = re.compile(r"[/\\](?:site-packages|dist-packages)[/\\]"
                      r"|[/\\]lib[/\\]python\d+(?:\.\d+)?[/\\]"
                      r"|^<frozen |^<string>$")


def in_application(path: str) -> bool:
    """Whether a traceback frame's file is the application's own code (not the stdlib,
    an installed package, or otel-monitor's own modules)."""
    if path in _APPLICATION_FILES:
        return True
    if not path or _FOREIGN.search(path):
        return False
    return not path.startswith(_INTERNAL_DIRS + _STDLIB_DIRS)


def frames(traceback_text: str | None) -> list[tuple[str, str]]:
    """The (file, function) of each frame of the traceback's last exception (the one
    raised; chained ones print first), outermost first."""
    if not traceback_text:
        return []
    lines = traceback_text.splitlines()
    start = 0
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip().endswith(_HEADER):
            start = i
            break
    out = []
    for line in lines[start:]:
        m = _FRAME.match(line)
        if m:
            out.append((m["file"], m["func"]))
    return out


def short_file(path: str) -> str:
    """A file as its last two path components (``pkg/module.py``): the same code
    checked out or installed at another place keeps its groups."""
    parts = [p for p in re.split(r"[/\\]", path) if p]
    return "/".join(parts[-2:])


def app_frames(traceback_text: str | None) -> list[str]:
    """The innermost ``MAX_FRAMES`` in-application frames as ``file:function``,
    innermost first."""
    picked = []
    for path, func in reversed(frames(traceback_text)):
        if in_application(path):
            picked.append(f"{short_file(path)}:{func}")
            if len(picked) == MAX_FRAMES:
                break
    return picked


@functools.lru_cache(maxsize=512)
def _cached_app_frames(frames_text: str) -> tuple[str, ...]:
    return tuple(app_frames(frames_text))


def _frames_text(traceback_text: str) -> str:
    """The traceback up to the end of its last frame's line: what the frames are parsed
    from, without the message (which varies from call to call), so a storm of one failure
    with varying messages parses its frames once."""
    last = traceback_text.rfind('\n  File "')
    if last < 0:
        return traceback_text
    end = traceback_text.find("\n", last + 1)
    return traceback_text if end < 0 else traceback_text[:end]


def fingerprint(process: str, exception_type: str | None, traceback_text: str | None) -> str:
    """The group key of a failure: 32 hex digits."""
    picked = _cached_app_frames(_frames_text(traceback_text)) if traceback_text else ()
    key = "\x1f".join([process or "", exception_type or "", *picked])
    return hashlib.blake2b(key.encode("utf-8", "backslashreplace"), digest_size=16).hexdigest()


_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}\b")
_TIME = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
                   r"(?:Z|[+-]\d{2}:?\d{2})?)?\b|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b")
_HEX = re.compile(r"\b0[xX][0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])"
                  r"[0-9a-fA-F]{8,}\b")
_STR = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
_NUM = re.compile(r"(?<![\w<])[-+]?\d+(?:[.,_]\d+)*(?:[eE][-+]?\d+)?(?![\w>])"
                  r"|(?<=[A-Za-z_])\d+\b")


def normalise_message(message: str | None) -> str:
    """A message's first line with what varies call to call replaced: UUIDs ``<uuid>``,
    ISO dates and times ``<time>``, hex ids (``0x…``, runs of 8+ hex digits) ``<hex>``,
    quoted strings ``<str>``, numbers ``<n>``; at most ``MAX_MESSAGE`` characters."""
    if not message:
        return ""
    line = message.strip().splitlines()[0].strip() if message.strip() else ""
    line = line[:MAX_MESSAGE * 4]  # bound the regex work on a huge message
    line = _UUID.sub("<uuid>", line)
    line = _TIME.sub("<time>", line)
    line = _STR.sub("<str>", line)
    line = _HEX.sub("<hex>", line)
    line = _NUM.sub("<n>", line)
    if len(line) > MAX_MESSAGE:
        line = line[:MAX_MESSAGE - 1] + "…"
    return line


def message_of(exception_type: str | None, traceback_text: str | None) -> str:
    """The raised exception's message from its formatted traceback: the first unindented
    line after the last ``Traceback`` header's frames, without the ``Type:`` prefix (a
    text with no header is the message itself)."""
    if not traceback_text:
        return ""
    lines = traceback_text.rstrip().splitlines()
    start = -1
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip().endswith(_HEADER):
            start = i
            break
    line = ""
    if start < 0:
        line = lines[0] if lines else ""
    else:
        for candidate in lines[start + 1:]:
            if candidate and not candidate[0].isspace() and not candidate.startswith("|"):
                line = candidate
                break
    names = [n for n in (exception_type, short_type(exception_type)) if n]
    for name in names:
        if line == name:
            return ""
        if line.startswith(name + ": "):
            return line[len(name) + 2:]
    return line


def short_type(exception_type: str | None) -> str:
    return (exception_type or "Exception").rsplit(".", 1)[-1]


def title(exception_type: str | None, message: str | None) -> str:
    """``ShortType: normalised message`` (just the type when there is no message)."""
    text = normalise_message(message)
    out = f"{short_type(exception_type)}: {text}" if text else short_type(exception_type)
    return out[:MAX_TITLE]
