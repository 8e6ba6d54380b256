#!/usr/bin/env bash
# The Node.js OpenTelemetry SDK (tests/dash_ui/node_otlp: @opentelemetry/sdk-trace-base 2.x
# and the OTLP proto and JSON exporters, pinned by its package-lock.json) for the test that
# sends spans from Node to `otel-monitor serve` (tests/dash_ui/test_ingest_node.py).
# Node.js comes from Debian; without node or npm this does nothing (the test then skips,
# saying so). Idempotent: `npm ci` runs again only when package-lock.json changes.
set -euo pipefail
cd "$(dirname "$0")/../tests/dash_ui/node_otlp"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node/npm not installed: the Node.js OTLP ingest test will be skipped"
    exit 0
fi
stamp="node_modules/.installed-$(cksum < package-lock.json | cut -d' ' -f1)"
[ -f "$stamp" ] && exit 0
npm ci --no-audit --no-fund --loglevel=error
touch "$stamp"
