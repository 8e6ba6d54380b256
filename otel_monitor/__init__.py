"""otel-monitor: every call of a decorated function becomes an OpenTelemetry span,
its inputs and output stored as rows of a local SQLite store.

    from otel_monitor import monitor

    @monitor("pricing", mask=("api_key",))
    def price(spot, strike, vol, t, api_key): ...

    @feed("bbg.fx", interval_s=1.0)      # each call is a tick of the feed
    def on_fx(snapshot): ...

What this package imports stays light: no Dash, Plotly, FastAPI or uvicorn.
"""
from __future__ import annotations

from typing import Any

from exporters.errors import (ConfigError, NotFound, OtelMonitorError, SchemaError, StoreBusy,
                              StoreError, StoreFull)

from ._config import Settings
from ._decorator import monitor
from .pipeline import PIPELINE

__all__ = ["ConfigError", "NotFound", "OtelMonitorError", "SchemaError", "Settings", "StoreBusy",
           "StoreError", "StoreFull", "configure", "feed", "force_flush", "monitor", "shutdown",
           "tick"]


# The process's feeds: ``@feed(name, interval_s=…)`` on a tick handler, ``tick(name)``.
feed = PIPELINE.feeds.feed
tick = PIPELINE.feeds.tick


def configure(**settings: Any) -> Settings:
    """Set up (or re-set up) recording. Arguments override the environment:
    ``db_path`` (OTEL_MONITOR_DB), ``retention_hours``, ``purge_interval_s``, ``max_db_mb``,
    ``alert_webhooks`` (OTEL_MONITOR_WEBHOOKS), ``otlp_endpoint``, ``otlp_protocol``,
    ``max_value_length``, ``queue_size``, ``flush_interval_s``, ``mask_key``; alerts:
    ``ui_url``, ``pagerduty_routing_key``, ``alert_exceptions``,
    ``alert_ignore_exceptions``, ``alert_feed_lag``, ``feed_stale_after_s``,
    ``backpressure_depth``, ``backpressure_for_s``, ``alert_backpressure``,
    ``alert_group_window_s``, ``alert_queue_size``, ``alert_timeout_s``,
    ``alert_max_attempts``, ``alert_backoff_s`` (each ``OTEL_MONITOR_<NAME>``; see README).
    A bad value raises ``ConfigError`` and changes nothing."""
    return PIPELINE.configure(settings)


def force_flush(timeout_s: float = 30.0) -> bool:
    """Return once everything recorded so far is in SQLite (False on timeout)."""
    return PIPELINE.force_flush(timeout_s)


def shutdown() -> None:
    """Flush and stop the writer; also runs at interpreter exit."""
    PIPELINE.shutdown()
