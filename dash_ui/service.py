"""The UI's one query service: the ``TraceQueries`` that both the JSON API's routes and
the Dash callbacks call, so that both always show the same data. The server factory
(``dash_ui.server.create_server_app``) builds it once and hands it to both; the app
factories also take a store path, for use on their own (e.g. embedded in a Dash app)."""
from __future__ import annotations

import os

from exporters.queries import RibbonLevels, TraceQueries
from otel_monitor.settings import read_setting

QuerySource = TraceQueries | str | os.PathLike[str]


def ribbon_levels() -> RibbonLevels:
    """The ribbon's thresholds from the settings (OTEL_MONITOR_RIBBON_*, .env)."""
    return RibbonLevels(
        queue_depth=(read_setting("ribbon_queue_amber"), read_setting("ribbon_queue_red")),
        write_lag_ms=(read_setting("ribbon_write_lag_amber_ms"),
                      read_setting("ribbon_write_lag_red_ms")),
        feed_age_factors=(read_setting("ribbon_feed_amber_factor"),
                          read_setting("ribbon_feed_red_factor")))


def query_service(source: QuerySource) -> TraceQueries:
    """``source`` itself if it is a service, else a new one over the store at that path
    (opened read-only), with the ribbon's thresholds from the settings."""
    if isinstance(source, TraceQueries):
        return source
    queries = TraceQueries(source)
    queries.ribbon_levels = ribbon_levels()
    return queries
