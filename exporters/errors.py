"""otel-monitor's exceptions: one base, so a caller can catch everything we raise.

    OtelMonitorError
    ├── ConfigError      a setting has a value otel-monitor cannot use (also a ValueError)
    ├── StoreError       a store operation failed; the message names the file and why
    │   ├── StoreBusy    another connection holds the lock for longer than we wait
    │   ├── StoreFull    the disk (or the store's page limit) is full
    │   ├── SchemaError  the file is not a store this version can use
    │   ├── RowRejected  a constraint refused a row (e.g. a span id already stored)
    │   └── StepBudgetExceeded  a read passed its step budget and was stopped
    └── NotFound         what was asked for is not in the store (also a LookupError)

They live in the lowest package (``exporters``) because every layer raises them;
``otel_monitor`` re-exports them for user code.
"""
from __future__ import annotations


class OtelMonitorError(Exception):
    """Base of every exception otel-monitor raises on purpose."""


class ConfigError(OtelMonitorError, ValueError):
    """A setting has a value otel-monitor cannot use; the message names it."""


class StoreError(OtelMonitorError):
    """A store operation failed (the message says which file and why)."""


class StoreBusy(StoreError):
    """The store stayed locked by another connection for longer than we wait."""


class StoreFull(StoreError):
    """The disk, or the store's own page limit, has no room for the write."""


class SchemaError(StoreError):
    """The file is not an otel-monitor store this version can read or write."""


class RowRejected(StoreError):
    """A constraint of the store refused a row (a span id already stored, say)."""


class StepBudgetExceeded(StoreError):
    """A read given ``max_steps`` (``Database.execute``) took more and was stopped."""


class NotFound(OtelMonitorError, LookupError):
    """The call, process or item asked for is not in the store."""
