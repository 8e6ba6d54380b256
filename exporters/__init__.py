"""Span exporters and the store: the span -> rows half of otel-monitor."""
from .columns import SEVEN_COLUMNS
from .database import Database
from .errors import (ConfigError, NotFound, OtelMonitorError, RowRejected, SchemaError,
                     StepBudgetExceeded, StoreBusy, StoreError, StoreFull)
from .processor import MonitorSpanProcessor
from .records import CallSite
from .retention import RetentionWorker
from .schema import SCHEMA_VERSION
from .sqlite_exporter import RecordWriter, SQLiteSpanExporter
from .store import SpanStore
from .worker import BackgroundWorker

__all__ = [
    "SEVEN_COLUMNS", "SCHEMA_VERSION", "BackgroundWorker", "CallSite", "ConfigError", "Database",
    "MonitorSpanProcessor", "NotFound", "OtelMonitorError", "RecordWriter", "RetentionWorker",
    "RowRejected", "SQLiteSpanExporter", "SchemaError", "SpanStore", "StepBudgetExceeded",
    "StoreBusy", "StoreError", "StoreFull",
]
