"""Span exporters and the store: the span -> rows half of otel-monitor."""
from .columns import SEVEN_COLUMNS
from .database import Database
from .errors import (ConfigError, NotFound, OtelMonitorError, RowRejected, SchemaError,
                     StepBudgetExceeded, StoreBusy, StoreError, StoreFull)
from .processor import MonitorSpanProcessor
from .records import CallSite
from .schema import SCHEMA_VERSION
from .sqlite_exporter import SQLiteSpanExporter
from .store import SpanStore

__all__ = [
    "SEVEN_COLUMNS", "SCHEMA_VERSION", "CallSite", "ConfigError", "Database",
    "MonitorSpanProcessor", "NotFound", "OtelMonitorError", "RowRejected", "SQLiteSpanExporter",
    "SchemaError", "SpanStore", "StepBudgetExceeded", "StoreBusy", "StoreError", "StoreFull",
]
