"""SLO specs (otel_monitor/slo.py): each bad field refused with a ConfigError naming it,
in code and in the YAML file named by ``slo_file``; the registry; the burn-rate pairs
and their scaling to the SLO's window."""
from __future__ import annotations

import pytest

import otel_monitor
from exporters.columns import DURATION_BUCKETS_MS
from otel_monitor.slo import (BURN_RULES_28D, PAGE, REGISTRY, TICKET, SLO, burn_rules,
                              load_slo_file, parse_window)


@pytest.fixture(autouse=True)
def empty_registry():
    REGISTRY.clear()
    yield
    REGISTRY.clear()


GOOD = dict(process="pricing.price", kind="availability", objective=99.9, window="28d")


@pytest.mark.parametrize("field, change", [
    ("name", dict(name="")),
    ("name", dict(name="has space")),
    ("selector", dict(process=None)),                               # none
    ("selector", dict(service="pricer")),                           # two
    ("selector", dict(process="")),
    ("kind", dict(kind="throughput")),
    ("objective", dict(objective=100)),
    ("objective", dict(objective=0)),
    ("objective", dict(objective="99.9")),
    ("objective", dict(objective=float("nan"))),
    ("threshold_ms", dict(kind="latency")),                         # missing
    ("threshold_ms", dict(kind="latency", threshold_ms=300)),       # not a bound
    ("threshold_ms", dict(threshold_ms=250)),                       # availability has none
    ("window", dict(window="28 days")),
    ("window", dict(window="0d")),
    ("window", dict(window="365d")),
    ("window", dict(window=28)),
])
def test_a_bad_field_in_code_is_refused_naming_it(field, change):
    spec = {**GOOD, **change}
    name = spec.pop("name", "pricing-availability")
    with pytest.raises(otel_monitor.ConfigError, match=field):
        otel_monitor.slo(name, **spec)
    assert otel_monitor.registered_slos() == ()


def test_an_unknown_field_is_refused_naming_it():
    with pytest.raises(otel_monitor.ConfigError, match="colour"):
        SLO.of("x", colour="red", **GOOD)


def test_a_latency_threshold_off_the_buckets_lists_the_allowed_ones():
    with pytest.raises(otel_monitor.ConfigError) as err:
        SLO("lat", service="pricer", kind="latency", objective=99, threshold_ms=300)
    assert "threshold_ms" in str(err.value)
    for bound in ("1, 2.5, 5, 10, 25", "250", "10000"):
        assert bound in str(err.value)


def test_registered_slos_are_the_code_and_file_ones_by_name(tmp_path):
    a = otel_monitor.slo("b-latency", selector={"service": "pricer"}, kind="latency",
                         objective=99, threshold_ms=250, window="7d")
    path = tmp_path / "slos.yaml"
    path.write_text("slos:\n"
                    "  - name: a-avail\n    process_group: pricing\n    objective: 99.5\n"
                    "  - name: b-latency\n    service: other\n    kind: availability\n")
    REGISTRY.load_file(path)
    slos = otel_monitor.registered_slos()
    assert [s.name for s in slos] == ["a-avail", "b-latency"]
    assert slos[1] is a  # registered in code: wins over the file's
    assert slos[0].selector == ("process_group", "pricing")
    assert (slos[0].kind, slos[0].objective, slos[0].window) == ("availability", 99.5, "28d")
    assert a.threshold_ms == 250.0 and a.threshold_ms in DURATION_BUCKETS_MS
    assert pytest.approx(a.error_budget) == 0.01


@pytest.mark.parametrize("body, field", [
    ("slos:\n  - process: p\n", "name"),
    ("slos:\n  - name: x\n    kind: availability\n", "selector"),
    ("slos:\n  - name: x\n    selector: {host: a}\n", "selector"),
    ("slos:\n  - name: x\n    process: p\n    objective: 120\n", "objective"),
    ("slos:\n  - name: x\n    process: p\n    kind: latency\n    threshold_ms: 3\n",
     "threshold_ms"),
    ("slos:\n  - name: x\n    process: p\n    window: 5 minutes\n", "window"),
    ("slos:\n  - name: x\n    process: p\n    kind: saturation\n", "kind"),
    ("slos:\n  - name: x\n    process: p\n    objectiv: 99\n", "objectiv"),
    ("slos:\n  - name: x\n    process: p\n  - name: x\n    process: q\n", "name"),
])
def test_a_bad_field_in_the_file_is_refused_naming_file_position_and_field(tmp_path, body,
                                                                            field):
    path = tmp_path / "slos.yaml"
    path.write_text(body)
    with pytest.raises(otel_monitor.ConfigError) as err:
        load_slo_file(path)
    text = str(err.value)
    assert field in text and "slos.yaml" in text and "slos[" in text


def test_configure_with_a_bad_slo_file_changes_nothing(tmp_path, monkeypatch):
    good = tmp_path / "good.yaml"
    good.write_text("slos:\n  - name: ok\n    process: p\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("slos:\n  - name: bad\n    process: p\n    objective: 100\n")
    monkeypatch.chdir(tmp_path)
    try:
        otel_monitor.configure(db_path=str(tmp_path / "s.db"), slo_file=str(good))
        assert [s.name for s in otel_monitor.registered_slos()] == ["ok"]
        with pytest.raises(otel_monitor.ConfigError, match="objective"):
            otel_monitor.configure(db_path=str(tmp_path / "s.db"), slo_file=str(bad))
        assert [s.name for s in otel_monitor.registered_slos()] == ["ok"]
        with pytest.raises(otel_monitor.ConfigError, match="slo_file"):
            otel_monitor.configure(db_path=str(tmp_path / "s.db"),
                                   slo_file=str(tmp_path / "missing.yaml"))
    finally:
        otel_monitor.shutdown()


def test_the_burn_rate_pairs_are_the_workbooks_and_scale_with_the_window():
    assert [(r.severity, r.factor, r.long, r.short) for r in BURN_RULES_28D] == [
        (PAGE, 14.4, "1h", "5m"), (PAGE, 6.0, "6h", "30m"), (TICKET, 1.0, "3d", "6h")]
    assert burn_rules(28 * 86400) == BURN_RULES_28D
    week = burn_rules(parse_window("7d"))
    assert [(r.factor, r.long, r.short) for r in week] == [
        (14.4, "15m", "75s"), (6.0, "90m", "450s"), (1.0, "18h", "90m")]
    minute = SLO("m", process="p", objective=99, window="1m").burn_rules
    for short, ref in zip(minute, BURN_RULES_28D):
        assert short.long_s == pytest.approx(ref.long_s * 60 / (28 * 86400))
        assert short.short_s == pytest.approx(ref.short_s * 60 / (28 * 86400))
        assert short.factor == ref.factor and short.severity == ref.severity
