"""The innermost monitored call, shared by the recorders and the feed handlers.

``CURRENT`` holds ``(trace_id, span_id, is_local)`` of the innermost monitored call
(or a feed handler's marker, see ``_feeds``); None outside any.
"""
from __future__ import annotations

from contextvars import ContextVar

from opentelemetry import context as otel_context
from opentelemetry import trace

CURRENT: ContextVar[tuple | None] = ContextVar("otel_monitor_current_call", default=None)

get_current_span = trace.get_current_span
# The current OTel context: empty (falsy) when no span, nor anything else, is current,
# which spares a local root the longer ``get_current_span`` lookup.
get_current_context = otel_context.get_current


def otel_context_var() -> ContextVar | None:
    """The ContextVar under OTel's context when its runtime context is the default one
    (``ContextVarsRuntimeContext``): the C wrapper reads it with no Python call. None
    for another runtime context, read through ``get_current_context`` then."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    return var if isinstance(var, ContextVar) else None
