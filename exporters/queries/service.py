"""TraceQueries: every read the UI makes, on a store opened read-only.

The web layer asks this class for data and never builds SQL. Each query reads
through an index (``spans_by_time``, ``spans_by_process``, ``spans_errors_by_time``,
``data_values_by_name``, ``spans_by_duration``, ``spans_by_trace``, the primary
keys): ``explain_*`` return the plans. The SQL lives in the modules beside this one, by
job: ``pages`` (the trace table), ``calls`` (processes, drill-down, traces), ``graph``,
``ribbon``, ``groups`` (error groups), ``slos`` (SLIs and burn rates from the rollups).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

from ..database import Database
from ..errors import NotFound
from ..self_health import IngestStats, SelfHealth
from . import callpage, calls, graph, groups, pages, ribbon, slos
from .filters import COUNT_CAP, RowFilter


# The sort column of each trace table sort, to merge a page's archived and hot rows:
# of the seven-column view, and of the calls view (one row per call).
MERGE_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "timestamp": lambda r: r["start_ns"],
    "duration_ms": lambda r: r["duration_ms"],
    "process": lambda r: r["Process"],
    "status": lambda r: r["Status"],
}
CALL_MERGE_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    **MERGE_KEYS,
    "process": lambda r: r["process"],
    "status": lambda r: r["status"],
}


class TraceQueries:
    """The UI's reads of one store. Safe to share between threads: each thread gets
    its own read-only Database."""

    def __init__(self, db_path: str | os.PathLike[str], *,
                 ribbon_levels: ribbon.RibbonLevels | None = None) -> None:
        self.path = os.fspath(db_path)
        self.ribbon_levels = ribbon_levels or ribbon.RibbonLevels()
        # "Now" of the reads that judge by age (windows, feed staleness, badges, fresh
        # banners, sparklines) when they are given no ``now_ns``: the wall clock, or an
        # instant a caller pins (a test's fixture, a replay) so the answer does not depend
        # on how long after that instant it reads.
        self.clock: Callable[[], int] = time.time_ns
        # otel-monitor's own health (the SelfHealth badge): drops per minute are judged
        # across calls; the serving process hands its ingest's answers over
        self.self_health = SelfHealth()
        self.ingest_stats: IngestStats | None = None
        # The cold archive (exporters.archive) that answers ranges older than the hot
        # store; None: no archive (the served app sets the settings' archive_path).
        self.archive_dir: str | None = None
        self.archive_target: Any = None  # an S3 destination (exporters.archive.remote)
        self._local = threading.local()
        self._local.db = Database(self.path, readonly=True)  # fail now if it cannot open

    def _now(self, now_ns: int | None) -> int:
        return self.clock() if now_ns is None else now_ns

    @property
    def db(self) -> Database:
        """This thread's read-only Database of the store."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = Database(self.path, readonly=True)
        return db

    # -- the trace table --------------------------------------------------------

    def page(self, f: RowFilter, *, sort: str = "-timestamp", offset: int = 0,
             limit: int = 100) -> pages.Page:
        """One page of rows in the seven columns, with span and trace id for drill-down,
        read by an index walk in the sort's order (see ``pages``); a range that ends
        before the hot store's oldest call is read from the archive (rows marked
        ``archived``)."""
        if self._archived(f):
            from . import archived
            rows, _ = archived.archived_page(self.archive_dir, f, f.until_ns, sort=sort,
                                             offset=offset, limit=limit,
                                             remote=self.archive_target)
            return pages.Page(rows)
        oldest = self._straddled(f)
        if oldest is not None:
            from . import archived
            return self._merged_page(f, oldest, sort, offset, limit, pages.page,
                                     archived.archived_page, MERGE_KEYS)
        return pages.page(self.db, f, sort=sort, offset=offset, limit=limit)

    def _straddled(self, f: RowFilter) -> int | None:
        """The hot store's oldest start when ``f``'s range begins before it and ends after
        it (and an archive is there): the range is partly archived, partly hot. None
        otherwise (a range with no start never reads the archive: the default table
        would otherwise read 30 days of files)."""
        if self.archive_dir is None or f.since_ns is None:
            return None
        if self.archive_target is None and not os.path.isdir(self.archive_dir):
            return None
        oldest = self.db.scalar("SELECT min(start_ns) FROM spans")
        if oldest is None or f.since_ns >= oldest:
            return None
        return oldest if f.until_ns is None or f.until_ns > oldest else None

    def _merged_page(self, f: RowFilter, oldest: int, sort: str, offset: int, limit: int,
                     hot_page: Callable[..., pages.Page], cold_page: Callable[..., Any],
                     keys: dict[str, Callable[[dict[str, Any]], Any]]) -> pages.Page:
        """One page of a range partly archived: the archive's rows before ``oldest``
        (``cold_page``) and the store's from it (``hot_page``), each read up to
        ``offset + limit`` in ``sort``'s order, then merged in that order by ``keys``
        (dedupe by span id: the store's copy wins)."""
        import dataclasses
        import heapq

        n = offset + limit
        hot = hot_page(self.db, dataclasses.replace(f, since_ns=oldest), sort=sort,
                       offset=0, limit=n)
        cold, _ = cold_page(self.archive_dir, f, oldest, sort=sort, offset=0, limit=n,
                            remote=self.archive_target)
        hot_ids = {r["span_id"] for r in hot.rows}
        cold = [r for r in cold if r["span_id"] not in hot_ids]
        name = sort.lstrip("-")
        descending = sort.startswith("-")
        key = keys[name]
        # On a tie, the newer call first where the sort breaks ties newest first (the
        # descending time and duration sorts, process and status), else the older one:
        # heapq.merge keeps the first iterable's rows first on ties.
        older_first = not descending and name in ("timestamp", "duration_ms")
        parts = (cold, hot.rows) if older_first else (hot.rows, cold)
        rows = list(heapq.merge(*parts, key=key, reverse=descending))[offset:n]
        return dataclasses.replace(hot, rows=rows)

    def _archived(self, f: RowFilter) -> bool:
        """True when ``f``'s range lies wholly before the hot store's oldest call and an
        archive is there to answer it."""
        if self.archive_dir is None or f.until_ns is None:
            return False
        if self.archive_target is None and not os.path.isdir(self.archive_dir):
            return False
        oldest = self.db.scalar("SELECT min(start_ns) FROM spans")
        return oldest is None or f.until_ns <= oldest

    def rows(self, f: RowFilter, *, sort: str = "-timestamp", offset: int = 0,
             limit: int = 100) -> list[dict[str, Any]]:
        """The rows of ``page``."""
        return self.page(f, sort=sort, offset=offset, limit=limit).rows

    def explain_rows(self, f: RowFilter, sort: str = "-timestamp") -> str:
        """The page's index walk."""
        return pages.explain_rows(self.db, f, sort)

    def explain_window(self, f: RowFilter, sort: str = "-timestamp", *,
                       by_name: bool = False) -> str:
        """The bounded strategy's plan (its sort is over at most SORT_WINDOW_CALLS calls)."""
        return pages.explain_window(self.db, f, sort, by_name)

    def count_rows(self, f: RowFilter, cap: int = COUNT_CAP) -> tuple[int, bool]:
        """(rows matching, exact?): counting stops at ``cap``, so it stays fast."""
        from . import archived
        return self._count(f, cap, archived.archived_rows, pages.count_rows)

    def _count(self, f: RowFilter, cap: int, cold_items: Callable[..., list],
               hot_count: Callable[..., tuple[int, bool]]) -> tuple[int, bool]:
        """(matching, exact?) of one view: from the archive (``cold_items``) for the part
        of the range before the hot store's oldest call, from the store (``hot_count``)
        for the rest. The two parts are disjoint in time, so nothing counts twice."""
        if self._archived(f):
            n = len(cold_items(self.archive_dir, f, f.until_ns, self.archive_target))
            return min(n, cap), n <= cap
        oldest = self._straddled(f)
        if oldest is None:
            return hot_count(self.db, f, cap)
        import dataclasses

        cold = len(cold_items(self.archive_dir, f, oldest, self.archive_target))
        hot, exact = hot_count(self.db, dataclasses.replace(f, since_ns=oldest), cap)
        n = cold + hot
        return min(n, cap), exact and n <= cap

    def explain_count(self, f: RowFilter) -> str:
        return pages.explain_count(self.db, f)

    # -- the calls view (one row per call) ----------------------------------------------

    def call_page(self, f: RowFilter, *, sort: str = "-timestamp", offset: int = 0,
                  limit: int = 100) -> pages.Page:
        """One page of calls, one row each, in the trace table's sorts (see ``callpage``);
        a range older than the hot store from the archive, as ``page``."""
        if self._archived(f):
            from . import archived
            rows, _ = archived.archived_call_page(self.archive_dir, f, f.until_ns, sort=sort,
                                                  offset=offset, limit=limit,
                                                  remote=self.archive_target)
            return pages.Page(rows)
        oldest = self._straddled(f)
        if oldest is not None:
            from . import archived
            return self._merged_page(f, oldest, sort, offset, limit, callpage.call_page,
                                     archived.archived_call_page, CALL_MERGE_KEYS)
        return callpage.call_page(self.db, f, sort=sort, offset=offset, limit=limit)

    def count_calls(self, f: RowFilter, cap: int = COUNT_CAP) -> tuple[int, bool]:
        from . import archived
        return self._count(f, cap, archived.archived_calls, callpage.count_calls)

    def explain_calls(self, f: RowFilter, sort: str = "-timestamp") -> str:
        """The calls page's index walk."""
        return callpage.explain_calls(self.db, f, sort)

    def latest_start_ns(self) -> int | None:
        return pages.latest_start_ns(self.db)

    # -- processes and calls ------------------------------------------------------

    def processes(self, *, window_s: float = 1800, now_ns: int | None = None
                  ) -> list[dict[str, Any]]:
        return calls.processes(self.db, window_s=window_s, now_ns=self._now(now_ns))

    def services(self, *, window_s: float = 1800, now_ns: int | None = None) -> list[str]:
        return calls.services(self.db, window_s=window_s, now_ns=self._now(now_ns))

    def explain_services(self) -> str:
        return calls.explain_services(self.db)

    def source(self, name: str) -> dict[str, Any]:
        return calls.source(self.db, name)

    def durations(self, name: str, *, minutes: float = 30, now_ns: int | None = None,
                  points: int = 120) -> dict[str, Any]:
        return calls.durations(self.db, name, minutes=minutes, now_ns=self._now(now_ns),
                               points=points)

    def explain_durations(self) -> str:
        return calls.explain_durations(self.db)

    def call(self, span_id: str) -> dict[str, Any]:
        """One call (the drill-down); a call no longer in the hot store is looked up in
        the archive (marked ``archived``)."""
        try:
            return calls.call(self.db, span_id)
        except NotFound:
            if self.archive_dir is None or (self.archive_target is None
                                            and not os.path.isdir(self.archive_dir)):
                raise
            from . import archived
            found = archived.archived_call(self.archive_dir, span_id, calls.host_of,
                                           self.archive_target)
            if found is None:
                raise
            return found

    def last_good(self, span_id: str) -> dict[str, Any]:
        """The most recent OK call of the same process before call ``span_id``."""
        return calls.last_good(self.db, span_id)

    def explain_last_good(self) -> str:
        return calls.explain_last_good(self.db)

    def explain_children(self) -> str:
        return calls.explain_children(self.db)

    def trace(self, trace_id: str) -> dict[str, Any]:
        """Every span of a trace in the store, with parent ids (the trace view)."""
        return calls.trace(self.db, trace_id)

    def explain_trace(self) -> str:
        return calls.explain_trace(self.db)

    # -- dependency graph -----------------------------------------------------------

    def graph(self, *, window_s: float = 1800, now_ns: int | None = None) -> dict[str, Any]:
        return graph.graph(self.db, window_s=window_s, now_ns=self._now(now_ns),
                           levels=self.ribbon_levels)

    def explain_graph(self) -> str:
        return graph.explain_graph(self.db)

    # -- status ribbon ----------------------------------------------------------------

    def health(self, *, now_ns: int | None = None) -> dict[str, Any]:
        return ribbon.health(self.db, now_ns=self._now(now_ns), levels=self.ribbon_levels,
                             self_health=self.self_health, ingest=self.ingest_stats)

    def feeds(self, *, now_ns: int | None = None) -> list[dict[str, Any]]:
        return ribbon.feeds(self.db, now_ns=self._now(now_ns), levels=self.ribbon_levels)

    def alerts(self, *, limit: int = 50) -> list[dict[str, Any]]:
        return ribbon.alerts(self.db, limit=limit)

    def banners(self, *, fresh_within_s: float = 10.0, now_ns: int | None = None
                ) -> list[dict[str, Any]]:
        return ribbon.banners(self.db, fresh_within_s=fresh_within_s,
                              now_ns=self._now(now_ns))

    # -- error groups -------------------------------------------------------------------

    def error_groups(self, *, status: str | None = None, process: str | None = None,
                     service: str | None = None, since_ns: int | None = None,
                     sort: str = "last_seen", limit: int = 50, offset: int = 0,
                     now_ns: int | None = None) -> dict[str, Any]:
        """A page of error groups (``groups.error_groups``)."""
        return groups.error_groups(self.db, status=status, process=process, service=service,
                                   since_ns=since_ns, sort=sort, limit=limit, offset=offset,
                                   now_ns=self._now(now_ns))

    def error_group(self, fingerprint: str, *, now_ns: int | None = None) -> dict[str, Any]:
        """One error group with its sparkline and latest call; ``NotFound`` if unknown."""
        return groups.error_group(self.db, fingerprint, now_ns=self._now(now_ns))

    def error_sparklines(self, fingerprints: list[str], *, now_ns: int | None = None
                         ) -> dict[str, dict[str, Any]]:
        """The groups' 6-hour count sparklines, in one read (``groups.sparklines``)."""
        return groups.sparklines(self.db, fingerprints, now_ns=self._now(now_ns))

    # -- SLOs --------------------------------------------------------------------

    def slo_windows(self, objective: slos.Objective, windows_s: list[float], *,
                    now_ns: int | None = None) -> list[slos.WindowCounts]:
        """(weighted calls, bad calls) of an SLO over each window ending now."""
        return slos.window_counts(self.db, objective, windows_s, now_ns=self._now(now_ns))

    def slo_status(self, objective: slos.Objective, window_s: float,
                   rules: list[tuple[str, float, float, float]], *,
                   now_ns: int | None = None) -> dict[str, Any]:
        """An SLO now: SLI, budget remaining, burn rates, state (``slos.slo_status``)."""
        return slos.slo_status(self.db, objective, window_s, rules, now_ns=self._now(now_ns))

    def explain_slo(self, objective: slos.Objective) -> str:
        return slos.explain(self.db, objective)
