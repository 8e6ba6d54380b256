"""The UI's reads of a store: ``TraceQueries`` and the trace table's filters and sorts.

    filters   RowFilter, SORTS, COUNT_CAP and the SQL pieces the others share
    pages     the trace table's sorted pages (index walks, bounded windows) and counts
    calls     processes, a process's source and durations, one call (drill-down)
    graph     the dependency graph
    ribbon    health, feeds, alerts and banners, with the badge levels
    groups    error groups: the list and one group with its sparkline
    slos      SLIs and burn rates of SLOs, from the per-minute rollups
    service   TraceQueries, the one object the API and the UI ask
"""
from ..errors import NotFound
from .filters import COUNT_CAP, SORTS, RowFilter
from .pages import SORT_WINDOW_CALLS, Page
from .ribbon import FEED_AGE_FACTORS, QUEUE_DEPTH_LEVELS, WRITE_LAG_MS_LEVELS, RibbonLevels
from .service import TraceQueries

__all__ = ["COUNT_CAP", "FEED_AGE_FACTORS", "QUEUE_DEPTH_LEVELS", "SORTS", "SORT_WINDOW_CALLS",
           "WRITE_LAG_MS_LEVELS", "NotFound", "Page", "RibbonLevels", "RowFilter", "TraceQueries"]
