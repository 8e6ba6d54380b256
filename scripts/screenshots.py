"""README's pictures of the real demo: ``make screenshots``.

Runs ``otel-monitor demo --serve`` on a fresh store in a temporary directory for
``--warmup`` seconds (about a minute: the graph, the ribbon and the table then show a
minute of the desk), then takes, with Playwright driving Debian's Chromium
(/usr/bin/chromium), the pictures README shows, into docs/screenshots/:

    main.png     the main page (ribbon, filters, trace table, graph)
    errors.png   errors only: the failed calls' `Type: message` cells
    calls.png    the calls view (one row per call)
    modal.png    the drill-down of a failed call
    graph.png    the dependency graph
    error-groups.png  the Errors tab: the demo's error groups

and prints the graph's label-box overlap count (0 expected). The test suite never writes
here (its pictures go to a temporary directory), so ``make test`` leaves git clean.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 900}
CY = "[...document.querySelectorAll('#om-graph, #om-graph *')].find(e => e._cyreg)._cyreg.cy"
OVERLAPS_JS = """() => { const b = window.omGraphLabelBoxes(); let n = 0;
    for (let i = 0; i < b.length; i++) for (let j = i + 1; j < b.length; j++)
        if (b[i].x1 < b[j].x2 && b[j].x1 < b[i].x2 && b[i].y1 < b[j].y2 && b[j].y1 < b[i].y2) n++;
    return {boxes: b.length, overlaps: n}; }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "api/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the demo's UI did not answer at {url}")


def wait_rows(page, grid: str = "om-grid") -> None:
    page.wait_for_function(f"""() => {{ const rs = document.querySelectorAll(
        '#{grid} .ag-center-cols-container .ag-row');
        return rs.length > 0 && [...rs].every(r => {{ const c = r.querySelector('[col-id="status"]');
                                                     return c && c.innerText; }}); }}""",
                           timeout=30_000)


def shoot(url: str, out: Path) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.goto(url)
        wait_rows(page)
        page.wait_for_function(f"() => {{ try {{ return {CY}.nodes().length > 0 && "
                               "window.omGraphMode === 'force'; } catch (e) { return false; } }",
                               timeout=30_000)
        page.wait_for_timeout(1_000)
        page.screenshot(path=str(out / "main.png"), full_page=True)
        measured = page.evaluate(OVERLAPS_JS)

        page.locator("#om-graph").scroll_into_view_if_needed()
        page.locator("#om-graph").screenshot(path=str(out / "graph.png"))

        page.locator("#om-errors-only").check()
        page.wait_for_function("() => location.search.includes('errors=1')")
        page.wait_for_function("""() => { const rs = [...document.querySelectorAll(
            '#om-grid .ag-center-cols-container .ag-row')];
            return rs.length > 0 && rs.every(r => r.querySelector('[col-id="status"]').innerText === 'ERR'); }""",
                               timeout=30_000)
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(out / "errors.png"))

        page.locator('#om-grid .ag-center-cols-container .ag-row [col-id="Data"]').first.click()
        page.locator("#om-modal-title").wait_for(timeout=15_000)
        page.wait_for_timeout(1_500)   # the sparkline and the trace view
        page.screenshot(path=str(out / "modal.png"))
        page.keyboard.press("Escape")
        page.locator("#om-modal-title").wait_for(state="hidden")

        page.locator("#om-errors-only").uncheck()
        page.locator("#om-view").get_by_text("calls (one per call)").click()
        wait_rows(page, "om-calls")
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(out / "calls.png"))

        page.get_by_role("tab", name="Errors").click()
        wait_rows(page, "om-errors-grid")
        page.wait_for_timeout(500)   # the sparklines
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(out / "error-groups.png"))
        browser.close()
    return measured


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warmup", type=float, default=60.0,
                    help="seconds the demo runs before the pictures (default: 60)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="otel-monitor-screens-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_MONITOR_")}
        demo = subprocess.Popen(
            [sys.executable, "-m", "otel_monitor.cli", "demo", "--serve", "--quiet",
             "--port", str(port), "--db", str(Path(tmp) / "demo.db")],
            env=env, cwd=tmp, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_up(url)
            print(f"demo serving at {url}; taking pictures in {args.warmup:.0f} s",
                  flush=True)
            time.sleep(args.warmup)
            measured = shoot(url, out)
        finally:
            os.killpg(demo.pid, signal.SIGINT)
            try:
                demo.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
    print(f"graph label boxes: {measured['boxes']}, overlapping pairs: "
          f"{measured['overlaps']}")
    for p in sorted(out.glob("*.png")):
        print(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p)
    return 0 if measured["overlaps"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
