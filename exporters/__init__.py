"""Span exporters and the store: the span -> rows half of otel-monitor."""
from .columns import SEVEN_COLUMNS
from .processor import MonitorSpanProcessor
from .records import CallSite
from .schema import SCHEMA_VERSION, SchemaError
from .sqlite_exporter import SQLiteSpanExporter
from .store import SpanStore, StoreError

__all__ = [
    "SEVEN_COLUMNS", "SCHEMA_VERSION", "CallSite", "MonitorSpanProcessor", "SQLiteSpanExporter",
    "SchemaError", "SpanStore", "StoreError",
]
