"""A small WSGI app for the gunicorn test: each request calls a monitored function.

    gunicorn -w 4 gunicorn_app:app      (with OTEL_MONITOR_DB set)

``GET /price?key=K`` calls ``price(K)``; the key is unique per request, so the test
can count every request's row in the store. With GUNICORN_APP_WARMUP=1 the module
makes one call when imported.
"""
from __future__ import annotations

import os
import time
from urllib.parse import parse_qs

from otel_monitor import monitor


@monitor("web")
def price(key: str) -> str:
    return key.upper()


if os.environ.get("GUNICORN_APP_WARMUP") == "1":
    # A call at import: with --preload it runs in the master, which then has a
    # configured pipeline (and a writer thread) when it forks the workers.
    price("warmup")


def app(environ, start_response):
    if environ.get("PATH_INFO") != "/price":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    key = parse_qs(environ.get("QUERY_STRING", "")).get("key", [""])[0]
    body = price(key).encode()
    time.sleep(0.002)  # a little work, so concurrent requests spread over the workers
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
