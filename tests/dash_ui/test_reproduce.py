"""Reproduce reproduces: for one failing call of each kind (a module function, a script's
function, a dataclass instance's method, a classmethod, an async def, a generator, a Dash
callback), the snippet served by GET /api/calls/<id>/reproduce, run with python, re-raises
the recorded exception's type and message, and the pytest file served with it passes; for
a method of an instance that cannot be rebuilt, the snippet stops naming SELF."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from api_server import ServedApp
from exporters.queries import RowFilter, TraceQueries
from plain_pytest import run_pytest

REPRO = Path(__file__).with_name("repro")
ROOT = Path(__file__).parents[2]

# process -> the last line python prints for the recorded exception
KINDS = {
    "module function": ("repro_targets.black_scholes",
                        "ValueError: vol must be positive, got -0.2"),
    "script function": ("__main__.script_price",
                        "QuoteRejected: EURUSD: quantity 5000 is over the desk limit"),
    "dataclass method": ("repro_targets.MarketDataClient.fetch_quote",
                         "repro_targets.StaleQuoteError: EURUSD quote from ebs is 12.5 s old "
                         "(max 2.0)"),
    "classmethod": ("repro_targets.MarketDataClient.for_venue",
                    "KeyError: 'no client configured for reuters'"),
    "async def": ("repro_targets.fetch_curve",
                  "OverflowError: curve usd.ois has only 10 points, asked for 40"),
    "generator": ("repro_targets.ticks", "RuntimeError: tick 3 of AAPL is missing"),
    "Dash callback": ("repro_targets.on_qty", "ZeroDivisionError: integer division or modulo "
                                              "by zero"),
}


def env() -> dict[str, str]:
    """This checkout's packages, and the workload's module (as its user's path would)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(REPRO)])}


def run_app(db: Path, extra: dict[str, str] | None = None) -> None:
    """Run repro_app.py as a script (``python repro_app.py``) recording into ``db``."""
    subprocess.run([sys.executable, "repro_app.py"], cwd=REPRO, check=True, timeout=120,
                   env={**env(), "OTEL_MONITOR_DB": str(db), **(extra or {})})


def failed_calls(db: Path) -> dict[str, str]:
    """process -> span id of its failed call."""
    rows = TraceQueries(db).rows(RowFilter(errors_only=True), limit=500)
    return {r["Process"]: r["span_id"] for r in rows}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = tmp_path_factory.mktemp("repro") / "repro.db"
    run_app(db)
    from dash_ui.server import create_server_app

    with ServedApp(create_server_app(db)) as app:
        yield app, failed_calls(db)


def reproduce(served, process: str) -> dict:
    app, spans = served
    r = httpx.get(f"{app.url}/api/calls/{spans[process]}/reproduce", timeout=30)
    assert r.status_code == 200, r.text[:300]
    return r.json()


def run_python(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(path)], cwd=path.parent, env=env(),
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind", KINDS)
def test_the_snippet_re_raises_the_recorded_exception(served, tmp_path, kind):
    process, last_line = KINDS[kind]
    got = reproduce(served, process)
    script = tmp_path / "snippet.py"
    script.write_text(got["snippet"])
    done = run_python(script)
    assert done.returncode == 1, (done.stdout, done.stderr)
    last = done.stderr.rstrip("\n").rsplit("\n", 1)[-1]
    if process.startswith("__main__."):  # the script's class, loaded under another name
        last = last.replace("_reproduced_repro_app.", "")
    assert last == last_line, done.stderr
    assert got["exception"]["message"] == last_line.split(": ", 1)[1]


def test_the_snippet_is_short(served):
    """The import and the call: no helper code pasted in."""
    for process, _ in KINDS.values():
        code = [ln for ln in reproduce(served, process)["snippet"].splitlines()
                if ln and not ln.startswith("#")]
        assert len(code) <= 5, code


def test_the_downloaded_pytest_files_pass(served, tmp_path):
    for kind, (process, _) in KINDS.items():
        got = reproduce(served, process)
        (tmp_path / got["test_filename"]).write_text(got["test"])
    done = run_pytest(tmp_path, cwd=tmp_path, env=env(), timeout=300)
    assert f"{len(KINDS)} passed" in done.stdout, done.stdout[-3000:]


def test_a_method_of_an_instance_that_cannot_be_rebuilt_stops_naming_self(served, tmp_path):
    got = reproduce(served, "repro_targets.Session.submit")
    assert "SELF = ...  # recorded: <repro_targets.Session object at 0x" in got["snippet"]
    script = tmp_path / "snippet.py"
    script.write_text(got["snippet"])
    done = run_python(script)
    assert done.returncode == 1
    last = done.stderr.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("otel_monitor.reproduce.Placeholder: fill in SELF"), done.stderr
    assert "PermissionError" not in done.stderr  # it never ran the call
    (tmp_path / got["test_filename"]).write_text(got["test"])
    ran = run_pytest(got["test_filename"], cwd=tmp_path, env=env())
    assert "1 failed" in ran.stdout and "fill in SELF" in ran.stdout, ran.stdout[-2000:]


def test_an_unknown_call_is_a_404(served):
    app, _ = served
    assert httpx.get(f"{app.url}/api/calls/{'0' * 16}/reproduce", timeout=10).status_code \
        == 404


def test_a_fully_qualified_exception_type_is_found_in_its_traceback():
    """exception_type is stored as OTel's exception.type (module.qualname); a traceback
    names the type the same way, but leaves ``__main__`` out."""
    from dash_ui.reproduce import recorded_exception

    text = "Traceback (most recent call last):\n  File \"x.py\", line 1\n{}: bad input\n"
    assert recorded_exception({"exception_type": "json.decoder.JSONDecodeError",
                               "exception": text.format("json.decoder.JSONDecodeError")}) \
        == ("json.decoder.JSONDecodeError", "bad input")
    assert recorded_exception({"exception_type": "__main__.Boom",
                               "exception": text.format("Boom")}) == ("Boom", "bad input")
