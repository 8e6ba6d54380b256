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

from ._decorator import monitor
from .pipeline import PIPELINE
from .settings import Settings, settings_help
from .slo import SLO, registered_slos
from .slo import slo as _register_slo

__all__ = ["SLO", "ConfigError", "NotFound", "OtelMonitorError", "SchemaError", "Settings",
           "StoreBusy", "StoreError", "StoreFull", "configure", "feed", "force_flush", "monitor",
           "registered_slos", "shutdown", "slo", "tick"]

# SLOs (otel_monitor/slo.py): ``otel_monitor.slo(name, process=…, kind=…, objective=…)``
# registers one in this process, which then evaluates its burn-rate alerts. (The name
# ``slo`` is the function here; the module is ``otel_monitor.slo`` in ``sys.modules``:
# ``from otel_monitor.slo import SLO`` reads it.)
slo = _register_slo


# The process's feeds: ``@feed(name, interval_s=…)`` on a tick handler, ``tick(name)``.
feed = PIPELINE.feeds.feed
tick = PIPELINE.feeds.tick


def configure(**settings: Any) -> Settings:
    return PIPELINE.configure(settings)


# The settings' list is rendered from their one declaration, in otel_monitor/settings.py.
configure.__doc__ = f"""Set up (or re-set up) recording and return the settings in force.
Arguments override the environment (``OTEL_MONITOR_*``), which overrides the ``.env``
file (``./.env`` or ``$OTEL_MONITOR_ENV_FILE``), which overrides the defaults.
A bad value raises ``ConfigError`` naming it and changes nothing.

Settings (environment variable; default): what it does

{settings_help()}
"""


def force_flush(timeout_s: float = 30.0) -> bool:
    """Return once everything recorded so far is in SQLite (False on timeout)."""
    return PIPELINE.force_flush(timeout_s)


def shutdown() -> None:
    """Flush and stop the writer; also runs at interpreter exit."""
    PIPELINE.shutdown()
