"""The column contract: names and values every part of otel-monitor agrees on.

The seven canonical columns are what a user sees; the brief's tables
(``process_trace``, ``data_trace``) are what its SQL reads. Both are views over
the store's own tables (see ``schema.py``).
"""
from __future__ import annotations

SEVEN_COLUMNS: tuple[str, ...] = (
    "Process",
    "Data",
    "Data Type",
    "Data Value",
    "Timestamp",
    "Status",
    "Exception",
)

PROCESS_TRACE_COLUMNS: tuple[str, ...] = ("ts", "process", "status", "duration_ms", "exception")
DATA_TRACE_COLUMNS: tuple[str, ...] = (
    "ts", "process", "data", "data_type", "data_value", "status", "exception",
)

# Call duration buckets, seconds (Prometheus's defaults with 1 ms added: most monitored
# functions are quick): /metrics's histogram, the per-minute rollups' columns
# (schema version 8: one cumulative count per bound, "duration_ms <= bound") and the
# thresholds a latency SLO may name. One list, so the three agree.
DURATION_BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5, 1.0, 2.5, 5.0, 10.0)
DURATION_BUCKETS_MS: tuple[float, ...] = tuple(b * 1000 for b in DURATION_BUCKETS_S)
# The rollups' bucket columns, in DURATION_BUCKETS_MS order.
ROLLUP_BUCKET_COLUMNS: tuple[str, ...] = tuple(f"b{i}" for i in range(len(DURATION_BUCKETS_S)))

# Data Type
INPUT = "INPUT"
OUTPUT = "OUTPUT"
# Status
OK = "OK"
ERR = "ERR"

# Outcome of a call, finer than Status: only ``error`` is ERR. Cancellation,
# early close of a generator and interpreter exit are recorded as such, not as crashes.
OUTCOME_OK = "ok"
OUTCOME_ERROR = "error"
OUTCOME_CANCELLED = "cancelled"
OUTCOME_CLOSED = "closed"
OUTCOME_INTERRUPTED = "interrupted"

# The name of the OUTPUT row.
RETURN = "return"

# Span attributes written by the decorator and read back by the exporter.
ATTR_PROCESS_GROUP = "monitor.process_group"
ATTR_INPUT_PREFIX = "monitor.input."
ATTR_OUTPUT_PREFIX = "monitor.output."
ATTR_OUTPUT_RETURN = ATTR_OUTPUT_PREFIX + "return"
ATTR_OUTCOME = "monitor.outcome"
# Parent when the nearest monitored caller was a local-only span (otel_span=False):
# the OTel parent stays the nearest exported span, so OTLP backends see a whole trace.
ATTR_LOCAL_PARENT = "monitor.local_parent_span_id"
ATTR_CODE_FUNCTION = "code.function.name"
ATTR_CODE_FILE = "code.file.path"
ATTR_CODE_LINE = "code.line.number"

# The Data of the INPUT row holding a received foreign span's resource ``host.name``.
DATA_RESOURCE_HOST = "resource.host.name"

# A value's text is bounded to this many characters (the max_value_length setting's
# default); a cut text ends with the marker, ``n`` the characters left out.
DEFAULT_MAX_VALUE_LENGTH = 1000
TRUNCATION_MARKER = "…<{n} more chars>"
