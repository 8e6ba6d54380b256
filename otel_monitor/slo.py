"""Service level objectives: the spec, its checks, where SLOs come from, and the
burn-rate alert windows (issue 16).

An SLO is data::

    otel_monitor.slo("pricing-availability", process="pricing.price",
                     kind="availability", objective=99.9, window="28d")
    otel_monitor.slo("pricing-latency", service="pricer", kind="latency",
                     objective=99.0, threshold_ms=250)

or the same in the YAML file named by the setting ``slo_file``::

    slos:
      - name: pricing-availability
        process: pricing.price          # or process_group: / service: (exactly one)
        kind: availability              # share of calls not ERR
        objective: 99.9                 # percent, 0 < x < 100
        window: 28d                     # default 28d; s, m, h, d or w: 1m, 6h, 7d
      - name: pricing-latency
        selector: {service: pricer}     # the selector may also be a mapping of one key
        kind: latency                   # share of calls with duration_ms <= threshold_ms
        objective: 99.0
        threshold_ms: 250               # one of the store's bucket bounds

- **selector**: exactly one of ``process`` (a monitored function's dotted name),
  ``process_group`` (``@monitor("group")``) or ``service`` (``service.name``).
- **kind**: ``availability`` (good = calls that did not fail) or ``latency`` (good =
  calls that took at most ``threshold_ms``; failed calls count by their duration too).
- **threshold_ms**: latency only, and one of ``DURATION_BUCKETS_MS`` (the bounds of the
  per-minute rollups and of ``/metrics``' histogram: the SLI is read from those buckets
  exactly, never interpolated).
- **window**: the SLO's compliance period; longer than 90 days is refused.

A bad spec is refused with a ``ConfigError`` naming the field (and, from the file, the
file and the SLO's position).

Burn-rate alerts (the Google SRE workbook's multiwindow, multi-burn-rate alerts): the
burn rate over a window is the window's error ratio over the error budget
``1 - objective/100``; an alert holds when BOTH windows of one of its pairs burn at or
above the pair's factor. For a 28-day SLO (``BURN_RULES_28D``):

====== ====== =========== ============
alert  factor long window short window
====== ====== =========== ============
page   14.4x  1 h         5 min
page   6x     6 h         30 min
ticket 1x     3 d         6 h
====== ====== =========== ============

For any other window the alert windows scale proportionally (``burn_rules``): each is
the 28-day one times ``window / 28d`` (a 7-day SLO pages at 14.4x over 15 min and
1.25 min). The factors stay: a factor is "this share of the whole budget spent in this
share of the window", which the scaling keeps. A window shorter than the rollups' minute
reads whole minutes (``exporters.queries.slos``): for a 1-minute SLO every alert window
is a fraction of a second, so each reads the current minute (and the one before while
the window reaches into it): the alert fires at the first evaluation after the spike
and resolves once the minute's ratio falls back under the factor.
"""
from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterable, Mapping

from exporters.columns import DURATION_BUCKETS_MS
from exporters.errors import ConfigError

AVAILABILITY = "availability"
LATENCY = "latency"
KINDS = (AVAILABILITY, LATENCY)
SELECTORS = ("process", "process_group", "service")
DEFAULT_WINDOW = "28d"
MAX_WINDOW_S = 90 * 86400
PAGE = "page"
TICKET = "ticket"
SEVERITIES = (PAGE, TICKET)  # most urgent first
REFERENCE_WINDOW_S = 28 * 86400

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_window(text: Any, what: str = "window") -> float:
    """A window text (``28d``, ``6h``, ``1m``, ``30s``, ``2w``) in seconds."""
    match = _WINDOW.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(f"{what} {text!r}: not a window (a number and one of s, m, h, d, "
                          "w: e.g. 28d, 6h, 1m)")
    seconds = float(match[1]) * _UNITS[match[2]]
    if not 0 < seconds <= MAX_WINDOW_S:
        raise ConfigError(f"{what} {text!r}: must be > 0 and at most 90d")
    return seconds


def window_text(seconds: float) -> str:
    """A window in seconds as the shortest exact text: 3600 -> ``1h``, 0.5 -> ``0.5s``."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class BurnRule:
    """One multiwindow burn-rate pair: ``severity`` holds when the burn rate over both
    ``long_s`` and ``short_s`` is at least ``factor``."""
    severity: str
    factor: float
    long_s: float
    short_s: float

    @property
    def long(self) -> str:
        return window_text(self.long_s)

    @property
    def short(self) -> str:
        return window_text(self.short_s)


# The workbook's pairs for a 28-day SLO (its table 5-8 shape, with 3 days for the
# ticket so the long window stays within the 30 days of rollups).
BURN_RULES_28D: tuple[BurnRule, ...] = (
    BurnRule(PAGE, 14.4, 3600.0, 300.0),
    BurnRule(PAGE, 6.0, 6 * 3600.0, 1800.0),
    BurnRule(TICKET, 1.0, 3 * 86400.0, 6 * 3600.0),
)


def burn_rules(window_s: float) -> tuple[BurnRule, ...]:
    """``BURN_RULES_28D`` scaled to an SLO window of ``window_s`` seconds (the factors
    unchanged, each alert window times ``window_s / 28d``)."""
    scale = window_s / REFERENCE_WINDOW_S
    return tuple(BurnRule(r.severity, r.factor, r.long_s * scale, r.short_s * scale)
                 for r in BURN_RULES_28D)


@dataclass(frozen=True)
class SLO:
    """One SLO (see the module's doc). Construct through ``SLO.of(...)`` or
    ``otel_monitor.slo(...)`` (both check every field), or ``SLO(...)`` directly: the
    same checks run."""

    name: str
    process: str | None = None
    process_group: str | None = None
    service: str | None = None
    kind: str = AVAILABILITY
    objective: float = 99.9
    threshold_ms: float | None = None
    window: str = DEFAULT_WINDOW
    description: str = ""

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name.strip() or not _NAME.match(name):
            raise ConfigError(f"SLO name {name!r}: must be a non-empty name of letters, "
                              "digits and . _ - : (it keys the alerts and the rules)")
        what = f"SLO {name!r}"
        given = [k for k in SELECTORS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(f"{what}: selector: name exactly one of process, process_group "
                              f"or service (got {', '.join(given) or 'none'})")
        value = getattr(self, given[0])
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{what}: selector {given[0]} must be a non-empty name "
                              f"(got {value!r})")
        if self.kind not in KINDS:
            raise ConfigError(f"{what}: kind {self.kind!r}: must be one of {', '.join(KINDS)}")
        objective = self.objective
        if isinstance(objective, bool) or not isinstance(objective, (int, float)) \
                or not math.isfinite(objective) or not 0 < objective < 100:
            raise ConfigError(f"{what}: objective {objective!r}: must be a percentage "
                              "between 0 and 100, exclusive (e.g. 99.9)")
        object.__setattr__(self, "objective", float(objective))
        threshold = self.threshold_ms
        if self.kind == LATENCY:
            allowed = ", ".join(f"{b:g}" for b in DURATION_BUCKETS_MS)
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                    or float(threshold) not in DURATION_BUCKETS_MS:
                raise ConfigError(f"{what}: threshold_ms {threshold!r}: a latency SLO's "
                                  f"threshold must be one of the bucket bounds (ms): {allowed}")
            object.__setattr__(self, "threshold_ms", float(threshold))
        elif threshold is not None:
            raise ConfigError(f"{what}: threshold_ms: only a latency SLO has one "
                              f"(kind is {self.kind!r})")
        parse_window(self.window, f"{what}: window")
        if not isinstance(self.description, str):
            raise ConfigError(f"{what}: description must be a text")

    @classmethod
    def of(cls, name: str, *, selector: Mapping[str, str] | None = None, **spec: Any) -> "SLO":
        """An SLO from keyword fields; ``selector`` may be given as a mapping of one key
        (``{"process": "pricing.price"}``). Unknown fields are refused by name."""
        spec = dict(spec)
        if selector is not None:
            if not isinstance(selector, Mapping) or len(selector) != 1:
                raise ConfigError(f"SLO {name!r}: selector: a mapping of exactly one of "
                                  "process, process_group or service")
            (key, value), = selector.items()
            if key not in SELECTORS:
                raise ConfigError(f"SLO {name!r}: selector: unknown key {key!r} (one of "
                                  "process, process_group, service)")
            if key in spec:
                raise ConfigError(f"SLO {name!r}: selector: {key} given twice")
            spec[key] = value
        unknown = sorted(set(spec) - _FIELDS)
        if unknown:
            raise ConfigError(f"SLO {name!r}: unknown field {unknown[0]!r} (fields: name, "
                              "selector or process/process_group/service, kind, objective, "
                              "threshold_ms, window, description)")
        return cls(name, **spec)

    # -- derived -------------------------------------------------------------------

    @property
    def selector(self) -> tuple[str, str]:
        """(``process`` | ``process_group`` | ``service``, the name)."""
        for key in SELECTORS:
            value = getattr(self, key)
            if value is not None:
                return key, value
        raise AssertionError("checked in __post_init__")

    @property
    def window_s(self) -> float:
        return parse_window(self.window)

    @property
    def error_budget(self) -> float:
        """The share of calls that may be bad over the window: ``1 - objective/100``."""
        return 1.0 - self.objective / 100.0

    @property
    def burn_rules(self) -> tuple[BurnRule, ...]:
        return burn_rules(self.window_s)

    @property
    def target(self) -> Any:
        """What the store's reads take (``exporters.queries.slos.Objective``)."""
        from exporters.queries.slos import Objective

        key, value = self.selector
        return Objective(key, value, self.kind, self.objective, self.threshold_ms)

    @property
    def rule_tuples(self) -> list[tuple[str, float, float, float]]:
        """``burn_rules`` as (severity, factor, long s, short s) for the store's reads."""
        return [(r.severity, r.factor, r.long_s, r.short_s) for r in self.burn_rules]

    def as_dict(self) -> dict[str, Any]:
        key, value = self.selector
        return {"name": self.name, "selector": {key: value}, "kind": self.kind,
                "objective": self.objective, "threshold_ms": self.threshold_ms,
                "window": self.window, "window_s": self.window_s,
                "description": self.description}


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
_FIELDS = {f.name for f in fields(SLO)} - {"name"}


# -- where SLOs come from ----------------------------------------------------------------

def load_slo_file(path: str | os.PathLike[str]) -> tuple[SLO, ...]:
    """The SLOs of a YAML file (``slos:`` a list of specs, or the list itself).
    ``ConfigError`` naming the file, the SLO's position and the field."""
    import yaml  # only when a file is named: `import otel_monitor` stays light

    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"slo_file {os.fspath(path)!r}: cannot read it: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"slo_file {os.fspath(path)!r}: not valid YAML: {exc}") from None
    return slos_from_data(doc, f"slo_file {os.fspath(path)!r}")


def slos_from_data(doc: Any, where: str = "SLOs") -> tuple[SLO, ...]:
    """SLOs from parsed data (``{"slos": [...]}`` or ``[...]``); names must be unique."""
    if isinstance(doc, Mapping):
        extra = sorted(set(doc) - {"slos"})
        if extra:
            raise ConfigError(f"{where}: unknown key {extra[0]!r} (the file holds 'slos:')")
        doc = doc.get("slos")
    if doc is None:
        return ()
    if not isinstance(doc, list):
        raise ConfigError(f"{where}: 'slos' must be a list of SLO specs")
    out: list[SLO] = []
    seen: set[str] = set()
    for i, spec in enumerate(doc):
        at = f"{where}: slos[{i}]"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{at}: an SLO spec is a mapping (name:, kind:, objective: …)")
        spec = dict(spec)
        if "name" not in spec:
            raise ConfigError(f"{at}: field name is missing")
        name = spec.pop("name")
        try:
            slo = SLO.of(name, **spec)  # a non-text name is refused by SLO itself
        except TypeError as exc:  # a field given as a non-identifier key
            raise ConfigError(f"{at}: {exc}") from None
        except ConfigError as exc:
            raise ConfigError(f"{at}: {exc}") from None
        if slo.name in seen:
            raise ConfigError(f"{at}: field name {slo.name!r} is used twice")
        seen.add(slo.name)
        out.append(slo)
    return tuple(out)


class SLORegistry:
    """The process's SLOs: those registered in code (``otel_monitor.slo``) and those of
    the settings' ``slo_file`` (replaced whole when the file is loaded again). A name
    registered in code wins over the file's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._code: dict[str, SLO] = {}
        self._file: dict[str, SLO] = {}
        self.file_path: str | None = None
        # The process that registered (or loaded) SLOs: the one that evaluates them.
        self.owner_pid: int | None = None
        self.listeners: list[Callable[[], None]] = []  # told of each change (the pipeline)

    def register(self, slo: SLO) -> SLO:
        with self._lock:
            self._code[slo.name] = slo
            self.owner_pid = os.getpid()
        self._changed()
        return slo

    def _changed(self) -> None:
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:
                pass

    def load_file(self, path: str | os.PathLike[str] | None) -> tuple[SLO, ...]:
        """Load (or with None, forget) the file's SLOs; on a ConfigError nothing changes."""
        slos = load_slo_file(path) if path else ()
        self.set_file(path, slos)
        return slos

    def set_file(self, path: str | os.PathLike[str] | None, slos: Iterable[SLO]) -> None:
        """The file's SLOs, loaded already (``configure`` loads first, sets last)."""
        with self._lock:
            self._file = {s.name: s for s in slos}
            self.file_path = os.fspath(path) if path else None
            if self._file:
                self.owner_pid = os.getpid()
        self._changed()

    def all(self) -> tuple[SLO, ...]:
        with self._lock:
            merged = {**self._file, **self._code}
        return tuple(merged[k] for k in sorted(merged))

    def clear(self) -> None:
        with self._lock:
            self._code.clear()
            self._file.clear()
            self.file_path = None
            self.owner_pid = None


REGISTRY = SLORegistry()


def slo(name: str, *, selector: Mapping[str, str] | None = None, process: str | None = None,
        process_group: str | None = None, service: str | None = None,
        kind: str = AVAILABILITY, objective: float = 99.9, threshold_ms: float | None = None,
        window: str = DEFAULT_WINDOW, description: str = "") -> SLO:
    """Register an SLO in this process (replacing one of the same name) and return it.
    The process that registers SLOs evaluates their burn-rate alerts."""
    spec: dict[str, Any] = dict(kind=kind, objective=objective, threshold_ms=threshold_ms,
                                window=window, description=description)
    for key, value in (("process", process), ("process_group", process_group),
                       ("service", service)):
        if value is not None:
            spec[key] = value
    return REGISTRY.register(SLO.of(name, selector=selector, **spec))


def registered_slos() -> tuple[SLO, ...]:
    """Every SLO of this process (code and ``slo_file``), by name."""
    return REGISTRY.all()


__all__ = ["AVAILABILITY", "BURN_RULES_28D", "BurnRule", "KINDS", "LATENCY", "PAGE",
           "REGISTRY", "SELECTORS", "SEVERITIES", "SLO", "SLORegistry", "TICKET",
           "burn_rules", "load_slo_file", "parse_window", "registered_slos", "slo",
           "slos_from_data", "window_text"]
