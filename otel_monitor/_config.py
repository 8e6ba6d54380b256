"""Settings: from ``configure(...)`` arguments, else the environment, else defaults.

The project's own variables share the ``OTEL_MONITOR_`` prefix; the standard
``OTEL_*`` variables (service name, resource attributes, OTLP exporter) are left
to the OpenTelemetry SDK, which reads them as its specification says.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

from exporters.errors import ConfigError

DEFAULT_DB_PATH = os.path.join("logs", "core_logs.db")


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in text.split(",") if u.strip())


def _optional_float(text: str) -> float | None:
    return None if text.strip().lower() in ("", "none", "0") else float(text)


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be one of 1/0, true/false, yes/no, on/off")


@dataclass(frozen=True)
class Settings:
    db_path: str = DEFAULT_DB_PATH
    retention_hours: float = 6.0
    purge_interval_s: float = 60.0
    max_db_mb: float | None = None
    alert_webhooks: tuple[str, ...] = field(default=(), repr=False)  # a hook URL is a secret
    otlp_endpoint: str | None = None
    otlp_protocol: str | None = None
    max_value_length: int = 1000
    queue_size: int = 100_000
    flush_interval_s: float = 0.2
    mask_key: str | None = field(default=None, repr=False)
    # Feeds and alerts (see otel_monitor/alerts/).
    ui_url: str = "http://127.0.0.1:8050"
    pagerduty_routing_key: str | None = field(default=None, repr=False)
    alert_exceptions: bool = True
    alert_ignore_exceptions: tuple[str, ...] = ()
    alert_feed_lag: bool = True
    feed_stale_after_s: float = 10.0
    backpressure_depth: int = 5000
    backpressure_for_s: float = 30.0
    alert_backpressure: bool = False
    alert_group_window_s: float = 60.0
    alert_queue_size: int = 1000
    alert_timeout_s: float = 5.0
    alert_max_attempts: int = 5
    alert_backoff_s: float = 0.5

    @property
    def max_db_bytes(self) -> int | None:
        """``max_db_mb`` in bytes, as the SQLite exporter takes it."""
        return int(self.max_db_mb * 2**20) if self.max_db_mb else None

    def __post_init__(self) -> None:
        _check_types(self)
        checks: list[tuple[str, bool, str]] = [
            ("retention_hours", self.retention_hours > 0, "must be > 0"),
            ("purge_interval_s", self.purge_interval_s > 0, "must be > 0"),
            ("max_db_mb", self.max_db_mb is None or self.max_db_mb > 0, "must be > 0 or None"),
            ("max_value_length", self.max_value_length >= 16, "must be >= 16"),
            ("queue_size", self.queue_size >= 1, "must be >= 1"),
            ("flush_interval_s", 0 < self.flush_interval_s <= 60, "must be in (0, 60]"),
            ("otlp_protocol", self.otlp_protocol in (None, "grpc", "http/protobuf"),
             "must be 'grpc' or 'http/protobuf'"),
            ("db_path", bool(self.db_path), "must not be empty"),
            ("ui_url", self.ui_url.startswith(("http://", "https://")), "must be an http(s) URL"),
            ("feed_stale_after_s", self.feed_stale_after_s > 0, "must be > 0"),
            ("backpressure_depth", self.backpressure_depth >= 1, "must be >= 1"),
            ("backpressure_for_s", self.backpressure_for_s >= 0, "must be >= 0"),
            ("alert_group_window_s", self.alert_group_window_s > 0, "must be > 0"),
            ("alert_queue_size", self.alert_queue_size >= 1, "must be >= 1"),
            ("alert_timeout_s", self.alert_timeout_s > 0, "must be > 0"),
            ("alert_max_attempts", self.alert_max_attempts >= 1, "must be >= 1"),
            ("alert_backoff_s", self.alert_backoff_s >= 0, "must be >= 0"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"otel-monitor setting {name}={getattr(self, name)!r}: {rule}")
        if self.mask_key is not None and len(self.mask_key.encode()) < 16:
            raise ConfigError("otel-monitor setting mask_key: must be at least 16 bytes")
        from .alerts.targets import parse_webhooks  # kinds, URLs and routing keys

        parse_webhooks(self.alert_webhooks, self.pagerduty_routing_key)


_NUMBER = (int, float)
# Setting name -> accepted types (None is accepted where the default is None).
_TYPES: dict[str, tuple[type, ...]] = {
    "db_path": (str,), "retention_hours": _NUMBER, "purge_interval_s": _NUMBER,
    "max_db_mb": _NUMBER, "alert_webhooks": (tuple,), "otlp_endpoint": (str,),
    "otlp_protocol": (str,), "max_value_length": (int,), "queue_size": (int,),
    "flush_interval_s": _NUMBER, "mask_key": (str,),
    "ui_url": (str,), "pagerduty_routing_key": (str,), "alert_exceptions": (bool,),
    "alert_ignore_exceptions": (tuple,), "alert_feed_lag": (bool,),
    "feed_stale_after_s": _NUMBER, "backpressure_depth": (int,), "backpressure_for_s": _NUMBER,
    "alert_backpressure": (bool,), "alert_group_window_s": _NUMBER, "alert_queue_size": (int,),
    "alert_timeout_s": _NUMBER, "alert_max_attempts": (int,), "alert_backoff_s": _NUMBER,
}
_LISTS = ("alert_webhooks", "alert_ignore_exceptions")  # comma-separated in the environment


def _check_types(settings: "Settings") -> None:
    for f in fields(settings):
        value = getattr(settings, f.name)
        if value is None and f.default is None:
            continue
        kinds = _TYPES[f.name]
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(t.__name__ for t in kinds)
            raise ConfigError(f"otel-monitor setting {f.name}={value!r}: must be {names}")
    for name in _LISTS:
        for item in getattr(settings, name):
            if not isinstance(item, str):
                raise ConfigError(f"otel-monitor setting {name}: {item!r} must be a string")


# Setting name -> (environment variable, parser)
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "db_path": ("OTEL_MONITOR_DB", str),
    "retention_hours": ("OTEL_MONITOR_RETENTION_HOURS", float),
    "purge_interval_s": ("OTEL_MONITOR_PURGE_INTERVAL_S", float),
    "max_db_mb": ("OTEL_MONITOR_MAX_DB_MB", _optional_float),
    "alert_webhooks": ("OTEL_MONITOR_WEBHOOKS", _comma_list),
    "otlp_endpoint": ("OTEL_MONITOR_OTLP_ENDPOINT", str),
    "otlp_protocol": ("OTEL_MONITOR_OTLP_PROTOCOL", str),
    "max_value_length": ("OTEL_MONITOR_MAX_VALUE_LENGTH", int),
    "queue_size": ("OTEL_MONITOR_QUEUE_SIZE", int),
    "flush_interval_s": ("OTEL_MONITOR_FLUSH_INTERVAL_S", float),
    "mask_key": ("OTEL_MONITOR_MASK_KEY", str),
    "ui_url": ("OTEL_MONITOR_UI_URL", str),
    "pagerduty_routing_key": ("OTEL_MONITOR_PAGERDUTY_ROUTING_KEY", str),
    "alert_exceptions": ("OTEL_MONITOR_ALERT_EXCEPTIONS", _flag),
    "alert_ignore_exceptions": ("OTEL_MONITOR_ALERT_IGNORE_EXCEPTIONS", _comma_list),
    "alert_feed_lag": ("OTEL_MONITOR_ALERT_FEED_LAG", _flag),
    "feed_stale_after_s": ("OTEL_MONITOR_FEED_STALE_AFTER_S", float),
    "backpressure_depth": ("OTEL_MONITOR_BACKPRESSURE_DEPTH", int),
    "backpressure_for_s": ("OTEL_MONITOR_BACKPRESSURE_FOR_S", float),
    "alert_backpressure": ("OTEL_MONITOR_ALERT_BACKPRESSURE", _flag),
    "alert_group_window_s": ("OTEL_MONITOR_ALERT_GROUP_WINDOW_S", float),
    "alert_queue_size": ("OTEL_MONITOR_ALERT_QUEUE_SIZE", int),
    "alert_timeout_s": ("OTEL_MONITOR_ALERT_TIMEOUT_S", float),
    "alert_max_attempts": ("OTEL_MONITOR_ALERT_MAX_ATTEMPTS", int),
    "alert_backoff_s": ("OTEL_MONITOR_ALERT_BACKOFF_S", float),
}


def load_settings(overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from explicit overrides, then the environment, then defaults."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    known = {f.name for f in fields(Settings)}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(f"unknown otel-monitor setting(s): {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for name, (var, parse) in ENVIRONMENT.items():
        if name in overrides and overrides[name] is not None:
            continue
        raw = environ.get(var)
        if raw is None or raw == "":
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"environment variable {var}={raw!r}: {exc}") from None
    for name, value in overrides.items():
        if value is None:
            continue
        if name in _LISTS:
            value = _comma_list(value) if isinstance(value, str) else tuple(value)
        values[name] = value
    if "db_path" in values:
        values["db_path"] = os.fspath(values["db_path"])
    return Settings(**values)
