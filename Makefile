# Two commands for a fresh machine (see README):
#   make demo   set up .venv, run the live demo workload on the embedded SQLite store
#               and serve the UI over it (make demo PORT=8051 for another port)
#   make test   set up .venv and run the test suite
#   make screenshots   README's pictures of the real demo (a minute of it) in docs/screenshots/
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PORT   ?= 8050
STAMP   = $(VENV)/.installed-$(shell cat pyproject.toml otel_monitor/_fastcall.c | cksum | cut -d' ' -f1)

.PHONY: demo test bench clean system-deps node-otlp screenshots

# the install builds otel_monitor/_fastcall.c (the decorator's hot path in C) in place
$(STAMP): pyproject.toml otel_monitor/_fastcall.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,ui]'
	rm -f $(VENV)/.installed-*
	touch $@

# The demo workload and the UI together (the UI on http://127.0.0.1:$(PORT)/); Ctrl-C stops both.
demo: $(STAMP)
	$(BIN)/otel-monitor demo --serve --port $(PORT) --db logs/core_logs.db

# README's pictures: the real demo, served for about a minute, photographed in Chromium
# (never by `make test`, whose pictures go to a temporary directory).
screenshots: $(STAMP) system-deps
	$(BIN)/python scripts/screenshots.py

# Chromium and Prometheus from Debian, for the browser and Prometheus tests.
system-deps:
	bash scripts/install-system-deps.sh

# Arize Phoenix in its own venv (.venv-phoenix): the real OTLP backend of the dual-write
# tests. Made again only when scripts/phoenix-venv.sh (its pinned version) changes.
PHOENIX_STAMP = .venv-phoenix/.made-$(shell cksum < scripts/phoenix-venv.sh | cut -d' ' -f1)
$(PHOENIX_STAMP): scripts/phoenix-venv.sh
	bash scripts/phoenix-venv.sh
	rm -f .venv-phoenix/.made-*
	touch $@

# The Node.js OpenTelemetry SDK (pinned by its package-lock.json) for the Node ingest test.
node-otlp:
	bash scripts/node-otlp-deps.sh

test: $(STAMP) system-deps $(PHOENIX_STAMP) node-otlp
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_overhead.py
	$(BIN)/python benchmarks/bench_export.py
	$(BIN)/python benchmarks/bench_detection.py

clean:
	rm -rf $(VENV) .venv-phoenix logs .pytest_cache
