"""Per-minute call rollups (schema version 8): the writer's upkeep and their retention.

``maintain`` runs inside ``SpanStore.insert_calls``'s transaction, beside the error
groups' (``exporters.groups``): it sums the batch in Python per (minute, process,
service) — calls, failed calls, durations and the duration histogram, each call counted
``weight`` times (NULL: once) — and upserts one row per key with ``col = col +
excluded.col``. A batch rolled back leaves no trace in them; a batch spanning a minute
boundary touches both minutes. A batch is a few hundred to a few thousand calls of a
handful of processes in one or two minutes: a few rows per batch.

The histogram is cumulative, as Prometheus's: ``b<i>`` counts the calls with
``duration_ms <= DURATION_BUCKETS_MS[i]``.

Rows are kept ``rollup_retention_days`` (30 by default) where calls keep 6 hours;
``purge_chunk`` deletes the oldest minutes, a chunk per short transaction
(``SpanStore.purge_groups`` runs it with the groups' purge).
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate, compress, repeat
from operator import floordiv, mul

from .columns import DURATION_BUCKETS_MS, ROLLUP_BUCKET_COLUMNS
from .database import Database

MINUTE_NS = 60 * 10**9
DAY_NS = 86400 * 10**9
DEFAULT_RETENTION_DAYS = 30.0
ROLLUP_COLUMNS = ("minute", "process_id", "service_name", "calls", "errors",
                  "duration_ms_sum", *ROLLUP_BUCKET_COLUMNS)

# Positions in the flat calls of SpanStore.insert_calls (store.SPAN_COLUMNS; a test
# checks they agree).
_START, _DURATION, _PROCESS_ID, _SERVICE, _STATUS, _WEIGHT = 4, 5, 6, 8, 9, 14

_BOUNDS = DURATION_BUCKETS_MS
_NB = len(_BOUNDS)
_UPSERT = (
    f"INSERT INTO call_rollups({', '.join(ROLLUP_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(ROLLUP_COLUMNS))}) "
    "ON CONFLICT(minute, process_id, service_name) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in ROLLUP_COLUMNS[3:])
)


def aggregate(spans: list, width: int) -> list[tuple]:
    """The batch's rollup rows (``ROLLUP_COLUMNS`` order), one per (minute, process,
    service) it touches.

    This runs on the writer thread for every call written, so the per-call work is
    done by C loops (``map``, ``sum``, ``Counter``, ``compress``) over the batch's
    columns rather than a Python loop per call: a batch has a few keys, each summed over
    its own slice of the columns."""
    starts = spans[_START::width]
    durations = spans[_DURATION::width]
    statuses = spans[_STATUS::width]
    weights = spans[_WEIGHT::width]
    weighted = weights.count(None) != len(weights)
    process_ids, services = spans[_PROCESS_ID::width], spans[_SERVICE::width]
    minute = starts[0] // MINUTE_NS
    if (max(starts) // MINUTE_NS == minute == min(starts) // MINUTE_NS
            and len(set(process_ids)) == 1 and len(set(services)) == 1):
        # The usual batch: one minute, one process, one service.
        return [(minute, process_ids[0], services[0] or "",
                 *_sums(durations, statuses, weights if weighted else None))]
    keys = list(zip(map(floordiv, starts, repeat(MINUTE_NS)), process_ids, services))
    distinct = set(keys)
    out = []
    for key in sorted(distinct, key=_sort_key):
        mask = [k == key for k in keys]
        minute, process_id, service = key
        out.append((minute, process_id, service or "",
                    *_sums(list(compress(durations, mask)), list(compress(statuses, mask)),
                           list(compress(weights, mask)) if weighted else None)))
    return out


def _sort_key(key: tuple) -> tuple:
    return key[0], key[1], key[2] or ""


def _sums(durations: list, statuses: list, weights: list | None) -> tuple:
    """(calls, errors, duration sum, cumulative bucket counts...) of one key's calls."""
    if weights is None:
        ordered = sorted(durations)
        return (float(len(durations)), float(statuses.count("ERR")), float(sum(durations)),
                *(float(bisect_right(ordered, b)) for b in _BOUNDS))  # <= each bound
    ws = [1.0 if w is None else float(w) for w in weights]
    per = [0.0] * (_NB + 1)  # per bucket; index _NB: above every bound
    for i, w in zip(map(bisect_left, repeat(_BOUNDS), durations), ws):
        per[i] += w
    return (float(sum(ws)), float(sum(compress(ws, [s == "ERR" for s in statuses]))),
            float(sum(map(mul, durations, ws))), *accumulate(per[:_NB]))


def maintain(db: Database, spans: list, width: int) -> None:
    """Add the batch's calls (flat, ``width`` values a call) to the rollups, inside the
    caller's transaction."""
    rows = aggregate(spans, width)
    if rows:
        db.execute_write_many(_UPSERT, rows)


def purge_chunk(db: Database, before_ns: int, limit: int) -> int:
    """One short transaction: up to ``limit`` rollup rows of minutes before
    ``before_ns`` go. Returns the rows deleted."""
    with db.transaction():
        return db.execute_write(
            "DELETE FROM call_rollups WHERE (minute, process_id, service_name) IN ("
            "SELECT minute, process_id, service_name FROM call_rollups WHERE minute < ? "
            "ORDER BY minute LIMIT ?)", (before_ns // MINUTE_NS, limit))


__all__ = ["DEFAULT_RETENTION_DAYS", "MINUTE_NS", "ROLLUP_COLUMNS", "aggregate", "maintain",
           "purge_chunk"]
