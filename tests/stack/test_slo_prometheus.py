"""The generated SLO rules in Debian's real Prometheus scraping a real `otel-monitor serve`:
a 1-minute availability SLO's burn-rate page reaches `firing` in /api/v1/alerts after an
error spike (every call failing), and leaves once the calls succeed again. Scrape and
evaluation every second; every wait polls with a deadline (timing is measured by
benchmarks/bench_slo_prometheus.py, not asserted)."""
from __future__ import annotations

from exporters.store import SpanStore
from recording import recording_into, settings_env_cleared
from slo_stack import Workload, recording_ok, slo_stack, wait_for
from stack_files import CONFIG


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
                # A page is either pair of the workbook: 14.4x over 1h and 5m, or 6x over
                # 6h and 30m (whichever crossed first); every call fails from the spike on,
                # so the ratios only grow after the alert fired.
                def ratio(window: str) -> float:
                    [got] = stack.query(f'slo:sli_error:ratio_rate{window}{{slo="checkout-1m"}}')
                    return float(got["value"][1])

                fast = ratio("1h") > 14.4 * 0.01 and ratio("5m") > 14.4 * 0.01
                slow = ratio("6h") > 6 * 0.01 and ratio("30m") > 6 * 0.01
                assert fast or slow
                # The period's rules read the recorded ratios: they follow one
                # evaluation (1 s) or more behind the alert, so polled, not read once.
                def budget_spent() -> bool:
                    budget = stack.query('slo:period_error_budget_remaining:ratio'
                                         '{slo="checkout-1m"}')
                    return bool(budget) and float(budget[0]["value"][1]) < 1.0

                wait_for(budget_spent, "the period's error budget spending", 30)
                stack.recover(workload, "page")
                assert stack.alerts("page") == []
            finally:
                workload.stopped.set()
                workload.join(10)


def test_the_shipped_self_health_rules_fire_for_a_store_near_its_cap(tmp_path,
                                                                     prometheus_bin):
    """selfmon-rules.yml as shipped: once the purging process notes a cap the store is at
    95 % of, OtelMonitorStoreNearCap fires; OtelMonitorWriterLag does not (the writer
    keeps up)."""
    with settings_env_cleared(), recording_into(tmp_path / "store.db"):
        with slo_stack(tmp_path, prometheus_bin,
                       extra_rules=(CONFIG / "prometheus" / "selfmon-rules.yml",)) as stack:
            wait_for(lambda: stack.query('otel_monitor:self_health:bad{condition="drops"}'),
                     "the self-health rules evaluated", 60)
            assert stack.firing("OtelMonitorStoreNearCap") == []
            store = SpanStore(tmp_path / "store.db")
            store.claim_purge(60 * 10**9, retention_ns=6 * 3600 * 10**9,
                              max_bytes=int(store.used_bytes() / 0.95))
            store.close()
            fired = wait_for(lambda: stack.firing("OtelMonitorStoreNearCap"),
                             "OtelMonitorStoreNearCap firing", 60)
            assert fired[0]["labels"]["condition"] == "store_size"
            assert stack.firing("OtelMonitorWriterLag") == []
