"""The UI's one query service: the ``TraceQueries`` that both the JSON API's routes and
the Dash callbacks call, so that both always show the same data. The server factory
(``dash_ui.server.create_server_app``) builds it once and hands it to both; the app
factories also take a store path, for use on their own (e.g. embedded in a Dash app)."""
from __future__ import annotations

import os

from exporters.queries import TraceQueries

QuerySource = TraceQueries | str | os.PathLike[str]


def query_service(source: QuerySource) -> TraceQueries:
    """``source`` itself if it is a service, else a new one over the store at that path
    (opened read-only)."""
    return source if isinstance(source, TraceQueries) else TraceQueries(source)
