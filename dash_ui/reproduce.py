"""The drill-down's **Reproduce**: Python that calls a recorded call's function with its
recorded inputs (a snippet to run, and a pytest file asserting the recorded outcome),
generated here from the store and short: the helpers are ``otel_monitor.reproduce``.

Each input becomes, by its stored repr:
- a literal (``ast.literal_eval`` reads it): written as it is;
- a constructor call of literals (``Point(x=1, y=2)``, a dataclass's repr): rebuilt at run
  time among the names of the function's module (``rebuild``), stopping with a message
  naming it when that does not give the same repr;
- anything else, or a masked value: a placeholder ``NAME = ...`` with the recorded repr
  beside it, and ``require(...)`` stops before the call until it is filled in.
A method's ``self`` is an input like the others (named ``SELF``); a classmethod's ``cls``
is the class that defines it (``owner``).
"""
from __future__ import annotations

import ast
import re
from typing import Any

from exporters.literals import literal_eval, parse_expression
from exporters.queries import NotFound, TraceQueries

_MAIN = "__main__."
_COMMENT_MAX = 300  # characters of a recorded repr shown beside its placeholder


def _literal(text: str) -> bool:
    try:
        literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def _constructed(text: str) -> bool:
    """``Name(...)`` / ``mod.Name(...)`` whose arguments are literals or such calls."""
    try:
        node = parse_expression(text).body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False

    def ok(n: ast.AST) -> bool:
        if isinstance(n, ast.Call):
            return (isinstance(n.func, (ast.Name, ast.Attribute))
                    and all(ok(a) for a in n.args) and all(ok(k.value) for k in n.keywords))
        try:
            literal_eval(n)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return isinstance(n, (ast.List, ast.Tuple, ast.Set)) and all(ok(e) for e in n.elts)
        return True
    return isinstance(node, ast.Call) and ok(node)


def recorded_exception(call: dict[str, Any]) -> tuple[str, str | None] | None:
    """(the exception's type as its traceback names it, its message) of a failed call;
    the message None when the stored text is not a Python traceback."""
    qualname = call.get("exception_type")
    if not qualname:
        return None
    # Stored as OTel's exception.type (module.qualname); a traceback leaves __main__ out.
    qualname = qualname.removeprefix("__main__.")
    lines = (call.get("exception") or "").rstrip("\n").split("\n")
    head = re.compile(rf"((?:[\w.]+\.)?{re.escape(qualname)})(?:: (.*))?")
    for i in range(len(lines) - 1, -1, -1):
        found = head.fullmatch(lines[i])
        if found:
            message = "\n".join([found[2] or "", *lines[i + 1:]])
            return found[1], message
    return qualname, None


def _name(data: str) -> str:
    """A placeholder's name: ``api_key`` -> ``API_KEY``, ``args[0]`` -> ``ARGS_0``."""
    return re.sub(r"\W+", "_", data).strip("_").upper() or "VALUE"


def _comment(text: str) -> str:
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= _COMMENT_MAX else text[:_COMMENT_MAX] + "…"


def _body(call: dict[str, Any], file: str | None) -> tuple[list[str], str, set[str]]:
    """(lines up to the call, the call expression, helper names used)."""
    process = call["process"]
    used = {"call", "load"}
    load = f"load({process!r}, {file!r})" if process.startswith(_MAIN) and file \
        else f"load({process!r})"
    lines = [f"fn = {load}"]
    inputs = [v for v in call["values"] if v["data_type"] == "INPUT"]
    last_star = max((i for i, v in enumerate(inputs) if "[" in v["data"]), default=-1)
    placeholders: list[str] = []
    args: list[str] = []
    for i, v in enumerate(inputs):
        data, text = v["data"], v["data_value"]
        if i == 0 and data == "cls" and text.startswith("<class "):
            value = "owner(fn)"
            used.add("owner")
        elif text.startswith("<HASHED:") or not (_literal(text) or _constructed(text)):
            value = _name(data)
            why = "masked" if text.startswith("<HASHED:") else "recorded"
            lines.append(f"{value} = ...  # {why}: {_comment(text)}")
            placeholders.append(value)
        elif _literal(text):
            value = text
        else:
            value = _name(data)
            lines.append(f"{value} = rebuild(fn, {value!r}, {text!r})")
            used.add("rebuild")
        positional = i <= last_star or (i == 0 and data in ("self", "cls"))
        if positional or not data.isidentifier():
            args.append(value)
        else:
            args.append(f"{data}={value}")
    if placeholders:
        lines.append(f"require({', '.join(f'{p}={p}' for p in placeholders)})")
        used.add("require")
    return lines, f"call({', '.join(['fn', *args])})", used


def _imports(used: set[str]) -> str:
    return f"from otel_monitor.reproduce import {', '.join(sorted(used))}"


def _outcome(call: dict[str, Any]) -> str:
    found = recorded_exception(call)
    if found:
        kind, message = found
        return f"raises {kind}" + (f": {_comment(message)}" if message else "")
    output = next((v["data_value"] for v in call["values"] if v["data_type"] == "OUTPUT"), None)
    return f"returns {_comment(output)}" if output is not None else "returns (not recorded)"


def snippet(call: dict[str, Any], file: str | None = None) -> str:
    """A script calling the recorded function as it was called (``file``: the process's
    recorded source file, used for a script's function)."""
    lines, expression, used = _body(call, file)
    return "\n".join([
        f"# Reproduce {call['process']} (span {call['span_id']}, {call['status']} at "
        f"{call['timestamp']})",
        f"# recorded: {_outcome(call)}",
        _imports(used), "", *lines, f"result = {expression}", "print(repr(result))"]) + "\n"


def test_file(call: dict[str, Any], file: str | None = None) -> str:
    """A pytest module asserting the recorded outcome: the recorded exception (type, and
    message when the traceback gives it) or, when its repr is a literal, the output."""
    lines, expression, used = _body(call, file)
    header = ["import re", "", "import pytest", ""]
    found = recorded_exception(call)
    output = next((v["data_value"] for v in call["values"] if v["data_type"] == "OUTPUT"), None)
    if found:
        kind, message = found
        used.add("exception_type")
        match = f", match=re.escape({message!r})" if message is not None else ""
        check = [f"with pytest.raises(exception_type(fn, {kind!r}){match}):",
                 f"    {expression}"]
        verb = "raises"
    elif output is not None and _literal(output):
        check = [f"assert {expression} == {output}"]
        header = []
        verb = "returns"
    else:
        check = [f"{expression}  # recorded output: {_comment(output or '(none)')}"]
        header = []
        verb = "runs"
    name = re.sub(r"\W+", "_", call["process"].rsplit(".", 1)[-1]).lower()
    body = [f"def test_{name}_{verb}_as_recorded():", *(f"    {ln}" for ln in lines + check)]
    return "\n".join([
        f"# Reproduces {call['process']} as recorded (span {call['span_id']}, "
        f"{call['status']} at {call['timestamp']})",
        f"# recorded: {_outcome(call)}", *header, _imports(used), "", "", *body]) + "\n"


def reproduction(queries: TraceQueries, span_id: str) -> dict[str, Any]:
    """The snippet, the pytest file and its name, for the call ``span_id``."""
    call = queries.call(span_id)
    try:
        file = queries.source(call["process"]).get("file")
    except NotFound:
        file = None
    return build(call, file)


def build(call: dict[str, Any], file: str | None) -> dict[str, Any]:
    """``reproduction`` of a call read already (``file``: its process's recorded file)."""
    found = recorded_exception(call)
    return {"span_id": call["span_id"], "process": call["process"],
            "snippet": snippet(call, file), "test": test_file(call, file),
            "test_filename": f"test_reproduce_{call['span_id']}.py",
            "exception": None if found is None else
            {"type": found[0], "message": found[1]}}
