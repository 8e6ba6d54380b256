"""A feed outside its hours is grey in real Chromium (issue 15): the process that ticks
it (a real ``@feed(hours=...)`` handler in a process of its own) writes it closed, and
the UI served by ``otel-monitor serve`` draws its node grey, its edge grey and dashed,
and colours the ribbon's LastFeedUpdate badge with the same ``closed`` token."""
from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from e2e_fixtures import (  # noqa: F401  (fixtures, used by name)
    browser,
    browser_context_args,
    browser_type_launch_args,
    playwright,
)
from e2e_support import serve, workload_env
from page_reading import CY, graph_ready, open_ui
from playwright.sync_api import Page, expect

from dash_ui._theme import TOKENS

pytestmark = pytest.mark.timeout(120)

WORKLOAD = textwrap.dedent("""
    import sqlite3, sys, time
    import otel_monitor
    from otel_monitor import feed, monitor

    db, hours = sys.argv[1], sys.argv[2]
    otel_monitor.configure(db_path=db, flush_interval_s=0.05)

    @monitor("pricing")
    def reprice(px: float) -> float:
        return px * 2

    @feed("lse.px", interval_s=1.0, hours=hours, tz="UTC")   # closed today
    def on_px(px: float) -> float:
        return reprice(px)

    on_px(101.5)
    otel_monitor.force_flush(10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the engine judged it closed and wrote so
        con = sqlite3.connect(db)
        try:
            row = con.execute("SELECT stale FROM feeds WHERE name = 'lse.px'").fetchone()
        except sqlite3.OperationalError:
            row = None
        finally:
            con.close()
        if row == (2,):
            break
        time.sleep(0.05)
    else:
        sys.exit("lse.px was never written closed")
    otel_monitor.shutdown()
""")


def rgb(hex_colour: str) -> str:
    return "rgb({},{},{})".format(*(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)))


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("closed") / "closed.db"
    tomorrow = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).strftime("%a")
    done = subprocess.run([sys.executable, "-c", WORKLOAD, str(db),
                           f"{tomorrow} 00:00-24:00"],
                          env=workload_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with serve(db) as url:
        yield url


def test_a_closed_feed_is_grey_in_the_graph_and_the_ribbon(page: Page, ui_url: str):
    open_ui(page, ui_url)
    graph_ready(page, nodes=2)  # reprice, lse.px
    node = page.evaluate(f"() => {CY}.getElementById('feed:lse.px').style('background-color')")
    edges = page.evaluate(f"() => {CY}.edges().map(e => [e.id(), e.style('line-color'), "
                          f"e.style('line-style')])")
    [(_, colour, style)] = [e for e in edges if e[0].startswith("feed:lse.px->")]
    assert node == rgb(TOKENS["closed"])
    assert (colour, style) == (rgb(TOKENS["closed"]), "dashed")
    badge = page.locator("#om-badge-LastFeedUpdate")
    expect(badge).to_have_class(re.compile(r"\bom-level-closed\b"), timeout=10_000)
    assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == rgb(
        TOKENS["closed"]).replace(",", ", ")
    expect(badge).to_have_attribute("title", re.compile("Closed: outside its hours"))
