#!/bin/sh
# Serve the UI, the API, /metrics and the OTLP ingest on 0.0.0.0:8050 (serve makes the
# store on a new volume itself).
set -eu
exec otel-monitor serve --db "$OTEL_MONITOR_DB" --host 0.0.0.0 --port 8050
