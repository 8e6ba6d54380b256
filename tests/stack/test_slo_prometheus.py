"""The generated SLO rules in Debian's real Prometheus scraping a real `otel-monitor serve`:
a 1-minute availability SLO's burn-rate page reaches `firing` in /api/v1/alerts after an
error spike (every call failing), and leaves once the calls succeed again. Scrape and
evaluation every second; every wait polls with a deadline (timing is measured by
benchmarks/bench_slo_prometheus.py, not asserted)."""
from __future__ import annotations

from recording import recording_into, settings_env_cleared
from slo_stack import Workload, recording_ok, slo_stack


def test_a_burn_rate_page_fires_in_prometheus_after_an_error_spike(tmp_path, prometheus_bin):
    with settings_env_cleared(), recording_into(tmp_path / "store.db"):
        with slo_stack(tmp_path, prometheus_bin) as stack:
            workload = Workload(rate=50)
            workload.start()
            try:
                assert recording_ok(stack) == 0.0
                assert stack.alerts("page") == []
                stack.detect(workload, "page")  # AssertionError if it never fires
                firing = stack.alerts("page")
                assert len(firing) == 1
                assert firing[0]["labels"]["slo_severity"] == "page"
                assert "checkout-1m" in firing[0]["annotations"]["summary"]
                ratio = stack.query('slo:sli_error:ratio_rate5m{slo="checkout-1m"}')
                assert float(ratio[0]["value"][1]) > 14.4 * 0.01
                budget = stack.query('slo:period_error_budget_remaining:ratio'
                                     '{slo="checkout-1m"}')
                assert budget and float(budget[0]["value"][1]) < 1.0
                stack.recover(workload, "page")
                assert stack.alerts("page") == []
            finally:
                workload.stopped.set()
                workload.join(10)
