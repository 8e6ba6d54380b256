"""Settings: from ``configure(...)`` arguments, else the environment, else defaults.

The project's own variables share the ``OTEL_MONITOR_`` prefix; the standard
``OTEL_*`` variables (service name, resource attributes, OTLP exporter) are left
to the OpenTelemetry SDK, which reads them as its specification says.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

DEFAULT_DB_PATH = os.path.join("logs", "core_logs.db")


class ConfigError(ValueError):
    """A setting has a value otel-monitor cannot use; the message names it."""


def _webhooks(text: str) -> tuple[str, ...]:
    return tuple(u.strip() for u in text.split(",") if u.strip())


def _optional_float(text: str) -> float | None:
    return None if text.strip().lower() in ("", "none", "0") else float(text)


@dataclass(frozen=True)
class Settings:
    db_path: str = DEFAULT_DB_PATH
    retention_hours: float = 6.0
    purge_interval_s: float = 60.0
    max_db_mb: float | None = None
    alert_webhooks: tuple[str, ...] = ()
    otlp_endpoint: str | None = None
    otlp_protocol: str | None = None
    max_value_length: int = 1000
    queue_size: int = 100_000
    flush_interval_s: float = 0.2
    mask_key: str | None = field(default=None, repr=False)

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
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"otel-monitor setting {name}={getattr(self, name)!r}: {rule}")
        if self.mask_key is not None and len(self.mask_key.encode()) < 16:
            raise ConfigError("otel-monitor setting mask_key: must be at least 16 bytes")
        for url in self.alert_webhooks:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"otel-monitor alert webhook {url!r}: must be an http(s) URL")


_NUMBER = (int, float)
# Setting name -> accepted types (None is accepted where the default is None).
_TYPES: dict[str, tuple[type, ...]] = {
    "db_path": (str,), "retention_hours": _NUMBER, "purge_interval_s": _NUMBER,
    "max_db_mb": _NUMBER, "alert_webhooks": (tuple,), "otlp_endpoint": (str,),
    "otlp_protocol": (str,), "max_value_length": (int,), "queue_size": (int,),
    "flush_interval_s": _NUMBER, "mask_key": (str,),
}


def _check_types(settings: "Settings") -> None:
    for f in fields(settings):
        value = getattr(settings, f.name)
        if value is None and f.default is None:
            continue
        if isinstance(value, bool) or not isinstance(value, _TYPES[f.name]):
            kinds = " or ".join(t.__name__ for t in _TYPES[f.name])
            raise ConfigError(f"otel-monitor setting {f.name}={value!r}: must be {kinds}")
    for url in settings.alert_webhooks:
        if not isinstance(url, str):
            raise ConfigError(f"otel-monitor alert webhook {url!r}: must be a string")


# Setting name -> (environment variable, parser)
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "db_path": ("OTEL_MONITOR_DB", str),
    "retention_hours": ("OTEL_MONITOR_RETENTION_HOURS", float),
    "purge_interval_s": ("OTEL_MONITOR_PURGE_INTERVAL_S", float),
    "max_db_mb": ("OTEL_MONITOR_MAX_DB_MB", _optional_float),
    "alert_webhooks": ("OTEL_MONITOR_WEBHOOKS", _webhooks),
    "otlp_endpoint": ("OTEL_MONITOR_OTLP_ENDPOINT", str),
    "otlp_protocol": ("OTEL_MONITOR_OTLP_PROTOCOL", str),
    "max_value_length": ("OTEL_MONITOR_MAX_VALUE_LENGTH", int),
    "queue_size": ("OTEL_MONITOR_QUEUE_SIZE", int),
    "flush_interval_s": ("OTEL_MONITOR_FLUSH_INTERVAL_S", float),
    "mask_key": ("OTEL_MONITOR_MASK_KEY", str),
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
        if name == "alert_webhooks":
            value = _webhooks(value) if isinstance(value, str) else tuple(value)
        values[name] = value
    if "db_path" in values:
        values["db_path"] = os.fspath(values["db_path"])
    return Settings(**values)
