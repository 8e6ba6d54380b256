#!/usr/bin/env bash
# Arize Phoenix in its own virtualenv (.venv-phoenix): the real OTLP backend the
# dual-write tests send to (tests/otel_monitor/test_otlp_phoenix.py). Its own venv
# because Phoenix pins versions of libraries the project's .venv also uses.
# Idempotent: a stamp named after the pinned version skips a second install.
set -euo pipefail

PHOENIX_VERSION="${PHOENIX_VERSION:-20.26.1}"
PYTHON="${PYTHON:-python3}"
VENV="${PHOENIX_VENV:-.venv-phoenix}"
stamp="$VENV/.installed-arize-phoenix-$PHOENIX_VERSION"

[ -f "$stamp" ] && exit 0
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "arize-phoenix==$PHOENIX_VERSION"
rm -f "$VENV"/.installed-arize-phoenix-*
touch "$stamp"
