#!/bin/sh
# Create the store if the volume is new (serve opens it read-only and refuses a missing
# one), then serve the UI, the API, /metrics and the OTLP ingest on 0.0.0.0:8050.
set -eu
python -c "import sys; from exporters.store import SpanStore; SpanStore(sys.argv[1]).close()" \
    "$OTEL_MONITOR_DB"
exec otel-monitor serve --db "$OTEL_MONITOR_DB" --host 0.0.0.0 --port 8050
