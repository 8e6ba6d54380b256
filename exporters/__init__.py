"""Span exporters and the store: the span -> rows half of otel-monitor."""
from .columns import SEVEN_COLUMNS
from .errors import (ConfigError, NotFound, OtelMonitorError, SchemaError, StoreBusy, StoreError,
                     StoreFull)
from .processor import MonitorSpanProcessor
from .records import CallSite
from .retention import RetentionWorker
from .schema import SCHEMA_VERSION
from .sqlite_exporter import RecordWriter, SQLiteSpanExporter
from .store import SpanStore
from .worker import BackgroundWorker

__all__ = [
    "SEVEN_COLUMNS", "SCHEMA_VERSION", "BackgroundWorker", "CallSite", "ConfigError",
    "MonitorSpanProcessor", "NotFound", "OtelMonitorError", "RecordWriter", "RetentionWorker",
    "SQLiteSpanExporter", "SchemaError", "SpanStore", "StoreBusy", "StoreError", "StoreFull",
]
