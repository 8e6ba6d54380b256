"""The store's schema, its version, and migrations between versions.

Calls are keyed by their span id (the brief's ``(ts, process)`` key loses every
second call of a function in the same second). Timestamps are stored as integer
nanoseconds (small, fast to index); the views render them as text.
"""
from __future__ import annotations

import re
from typing import Any, Protocol, Sequence

from .columns import ROLLUP_BUCKET_COLUMNS
from .errors import SchemaError

SCHEMA_VERSION = 9

# Text timestamp from integer nanoseconds: 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC), the
# form SQLite's own datetime() returns, so the brief's `ts < datetime('now', '-6 hours')`
# compares correctly.
_TS = (
    "(strftime('%Y-%m-%d %H:%M:%S', {col} / 1000000000, 'unixepoch')"
    " || printf('.%06d', {col} / 1000 % 1000000))"
)
_ISO = (
    "(strftime('%Y-%m-%dT%H:%M:%S', {col} / 1000000000, 'unixepoch')"
    " || printf('.%06dZ', {col} / 1000 % 1000000))"
)

TABLES = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per monitored function (or span name): the catalog the UI reads
-- source code from, and the integer key spans use.
CREATE TABLE IF NOT EXISTS processes (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    process_group TEXT,
    file          TEXT,
    line          INTEGER,
    source        TEXT,
    feeds         TEXT,
    updated_ns    INTEGER
);

-- One row per call (span).
CREATE TABLE IF NOT EXISTS spans (
    id             INTEGER PRIMARY KEY,
    span_id        INTEGER NOT NULL,          -- 64-bit OTel span id, signed
    trace_id       TEXT NOT NULL,             -- 32 hex digits
    parent_span_id INTEGER,
    start_ns       INTEGER NOT NULL,          -- UTC, ns since the epoch
    duration_ms    REAL NOT NULL,
    process_id     INTEGER NOT NULL REFERENCES processes(id),
    process_group  TEXT,
    service_name   TEXT,
    status         TEXT NOT NULL,             -- OK | ERR
    outcome        TEXT NOT NULL,             -- ok | error | cancelled | closed | interrupted
    exception_type TEXT,
    exception      TEXT,
    pid            INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS spans_by_span_id ON spans(span_id);
-- (version 4 widens the next three and spans_errors_by_process: COVERING_INDEXES)
CREATE INDEX IF NOT EXISTS spans_by_time ON spans(start_ns);
CREATE INDEX IF NOT EXISTS spans_by_process ON spans(process_id, start_ns);
CREATE INDEX IF NOT EXISTS spans_errors_by_time ON spans(start_ns) WHERE status = 'ERR';

-- One row per captured variable.
CREATE TABLE IF NOT EXISTS data_values (
    span       INTEGER NOT NULL,              -- spans.id
    seq        INTEGER NOT NULL,
    data       TEXT NOT NULL,
    data_type  TEXT NOT NULL,                 -- INPUT | OUTPUT
    data_value TEXT NOT NULL,
    PRIMARY KEY (span, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS data_values_by_name ON data_values(data, span);

-- Written by each exporting process so the UI (another process) can show it.
CREATE TABLE IF NOT EXISTS health (
    pid           INTEGER PRIMARY KEY,
    host          TEXT,
    service_name  TEXT,
    queue_depth   INTEGER NOT NULL,
    queue_peak    INTEGER NOT NULL,
    dropped       INTEGER NOT NULL,
    written       INTEGER NOT NULL,
    write_lag_ms  REAL,
    last_write_ns INTEGER,
    updated_ns    INTEGER NOT NULL
);
"""

# Version 2: what the instrumented process writes besides calls, for the UI to show:
# feeds and their last update, feed -> process edges, alerts sent or not, banner flags.
STATE_TABLES = """
-- One row per feed per process that ticks it (several workers may tick one feed).
CREATE TABLE IF NOT EXISTS feeds (
    name           TEXT NOT NULL,
    host           TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    service_name   TEXT,
    interval_s     REAL,                      -- expected update interval, if declared
    stale_after_s  REAL NOT NULL,             -- stale past this age
    last_update_ns INTEGER,                   -- NULL: declared, not ticked yet
    ticks          INTEGER NOT NULL,
    stale          INTEGER NOT NULL,          -- 1 if stale when written (updated_ns)
    updated_ns     INTEGER NOT NULL,
    PRIMARY KEY (name, host, pid)
);

-- Feed -> process edges of the dependency graph: a process called inside a feed's tick
-- handler (called = 1), or one that declares it reads the feed (declared = 1).
CREATE TABLE IF NOT EXISTS feed_edges (
    feed       TEXT NOT NULL,
    process    TEXT NOT NULL,
    declared   INTEGER NOT NULL DEFAULT 0,
    called     INTEGER NOT NULL DEFAULT 0,
    first_ns   INTEGER NOT NULL,
    last_ns    INTEGER NOT NULL,
    PRIMARY KEY (feed, process)
) WITHOUT ROWID;

-- One row per alert per webhook: sent, failed (after its retries) or dropped (the
-- pending queue was full, or the process stopped first).
CREATE TABLE IF NOT EXISTS alerts (
    id            INTEGER PRIMARY KEY,
    ts_ns         INTEGER NOT NULL,           -- when the condition was detected
    rule          TEXT NOT NULL,              -- exception | feed_lag | backpressure
    action        TEXT NOT NULL,              -- trigger | resolve
    key           TEXT NOT NULL,              -- the dedup key (PagerDuty dedup_key)
    target        TEXT NOT NULL,              -- 'slack https://host/…' (no secret path)
    status        TEXT NOT NULL,              -- sent | failed | dropped
    attempts      INTEGER NOT NULL,
    count         INTEGER NOT NULL,           -- occurrences this alert stands for
    summary       TEXT NOT NULL,
    error         TEXT,                       -- why it failed or was dropped
    process       TEXT,
    span_id       TEXT,                       -- 16 hex digits: the call alerted on
    trace_id      TEXT,
    feed          TEXT,
    done_ns       INTEGER NOT NULL,           -- when it was sent or given up
    host          TEXT,
    pid           INTEGER
);
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts(ts_ns);

-- Conditions the UI shows as a banner (backpressure), per writing process.
CREATE TABLE IF NOT EXISTS flags (
    name       TEXT NOT NULL,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    raised     INTEGER NOT NULL,              -- 1 raised, 0 cleared
    since_ns   INTEGER,                       -- when the condition began
    value      REAL,                          -- e.g. the queue depth
    message    TEXT,
    updated_ns INTEGER NOT NULL,              -- refreshed every second while raised
    PRIMARY KEY (name, host, pid)
);
"""

TABLES += STATE_TABLES

# Version 3: one process's failed calls in time order (the UI's "process + errors only"
# page walks this instead of every call of the process).
ERROR_INDEX_BY_PROCESS = """
CREATE INDEX IF NOT EXISTS spans_errors_by_process ON spans(process_id, start_ns)
    WHERE status = 'ERR';
"""

TABLES += ERROR_INDEX_BY_PROCESS

# Version 4: the OTLP dual-write's own figures beside the SQLite writer's, per process
# (NULL when the process does not dual-write).
OTLP_HEALTH = """
ALTER TABLE health ADD COLUMN otlp_exported INTEGER;
ALTER TABLE health ADD COLUMN otlp_failed INTEGER;
"""

TABLES += OTLP_HEALTH

# Version 6: whether the process records, and the writer's fault counters (issue 10):
# batches the store refused, and times the store was deleted or replaced under it.
RECORDING_HEALTH = """
ALTER TABLE health ADD COLUMN failed_batches INTEGER;
ALTER TABLE health ADD COLUMN store_recreated INTEGER;
ALTER TABLE health ADD COLUMN recording INTEGER;
"""

TABLES += RECORDING_HEALTH

# Also version 4: index shapes the UI's reads use, each costing the writer as little as
# the store grows (measured by benchmarks/bench_export.py --onto-big-store). An index
# whose insert position is random within a large range costs a page per call once the
# store outgrows the cache; the time-, process- and failure-ordered indexes only grow at
# their ends. So version 4 widens those to cover the reads (no row lookups) rather than
# add indexes (after the row id, so ties still come in call order):
# - spans_by_time carries each call's process and parent: the dependency graph reads a
#   window's parent/child pairs from it alone;
# - spans_by_process and the failed-calls indexes carry duration_ms (the latter status
#   too, which SQLite needs in the index to read it alone): a process's or the
#   failed calls' page sorted by duration is an exact top-N over that index
#   (exporters.queries), and the graph's last latency per process reads no row.
# One sort index is added: spans_by_duration, for duration pages without a process or
# errors filter. It walks each DURATION_BUCKET_NS of start time in duration order and the
# page merges the buckets: a new call lands in the newest bucket, so a batch touches a
# few of its pages, where one duration index over the whole store costs a random page
# per call (it cut the writer from about 45,000 to 10,000 calls/s on a 2,000,000-call
# store). Sorting by process walks processes by name, then spans_by_process; sorting by
# status merges a failed-calls walk with a walk in time order: neither needs an index.
# An earlier build of version 4 also had per-process and failed-calls duration indexes:
# they cost the writer a third of its speed on the big store and go.
DURATION_BUCKET_NS = 300_000_000_000  # 5 minutes
COVERING_INDEXES = """
DROP INDEX IF EXISTS spans_by_time;
CREATE INDEX spans_by_time ON spans(start_ns, id, process_id, parent_span_id);
DROP INDEX IF EXISTS spans_by_process;
CREATE INDEX spans_by_process ON spans(process_id, start_ns, id, duration_ms);
DROP INDEX IF EXISTS spans_errors_by_time;
CREATE INDEX spans_errors_by_time ON spans(start_ns, id, duration_ms, status)
    WHERE status = 'ERR';
DROP INDEX IF EXISTS spans_errors_by_process;
CREATE INDEX spans_errors_by_process ON spans(process_id, start_ns, id, duration_ms, status)
    WHERE status = 'ERR';
DROP INDEX IF EXISTS spans_by_process_duration;
DROP INDEX IF EXISTS spans_errors_by_duration;
"""
SORT_INDEXES = f"""
CREATE INDEX IF NOT EXISTS spans_by_duration
    ON spans(start_ns / {DURATION_BUCKET_NS}, duration_ms, start_ns);
"""

TABLES += COVERING_INDEXES + SORT_INDEXES

# Version 5: one trace's spans. The trace view (the trace's every span) and the
# drill-down's children (trace and parent known) are one range of this index, so
# children are found by parent id, not by a time window, which dropped async, late and
# clock-skewed ones. Every call pays for an insert at a random place of it: about 14%
# of the writer's calls/s on a fresh store (benchmarks/bench_export.py, 72.5k -> 62.5k),
# 17% with a (trace_id, parent_span_id, start_ns) key, so trace_id alone, and a
# trace's spans are sorted in Python.
TRACE_INDEX = """
CREATE INDEX IF NOT EXISTS spans_by_trace ON spans(trace_id);
"""

TABLES += TRACE_INDEX

# Version 7: error groups (issue 15). Every failed call belongs to a group keyed by its
# fingerprint (exporters.fingerprint); the writer keeps the groups in the same
# transaction as the calls (exporters.groups). A group outlives the calls (30 days past
# its last failure, where calls keep 6 hours): it is small.
# - Services and hosts are bounded JSON arrays in the group's row (at most
#   groups.MAX_PLACES each), not a side table: a group has a handful, they are only read
#   with their group, and one row per group keeps the writer's upsert to one statement.
# - error_group_minutes: failures per group per minute, for the count in the last hour,
#   the spike rule and the 6-hour sparkline; kept 24 hours.
# - spans.error_group: the group of a failed call, set by the writer for ERR calls only
#   (an OK call's insert names no new column: it costs the write path nothing). Its
#   index is partial, so OK calls never touch it either.
ERROR_GROUPS = """
CREATE TABLE IF NOT EXISTS error_groups (
    fingerprint      TEXT PRIMARY KEY,           -- 32 hex digits
    process          TEXT NOT NULL,
    exception_type   TEXT NOT NULL,
    title            TEXT NOT NULL,              -- ShortType: normalised message
    first_seen_ns    INTEGER NOT NULL,
    last_seen_ns     INTEGER NOT NULL,
    count            INTEGER NOT NULL,           -- exact, every failure ever written
    first_span_id    TEXT NOT NULL,              -- 16 hex digits
    first_trace_id   TEXT NOT NULL,
    last_span_id     TEXT NOT NULL,
    last_trace_id    TEXT NOT NULL,
    services         TEXT NOT NULL DEFAULT '[]', -- JSON array of names, bounded
    hosts            TEXT NOT NULL DEFAULT '[]', -- JSON array of names, bounded
    status           TEXT NOT NULL DEFAULT 'open',  -- open | resolved | ignored | snoozed
    snooze_until_ns  INTEGER,                    -- snoozed until this time, or
    snooze_remaining INTEGER,                    -- for this many more failures
    resolved_ns      INTEGER,
    spike_alerted_ns INTEGER,                    -- the last SPIKE event (one an hour)
    updated_ns       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS error_groups_by_last_seen ON error_groups(last_seen_ns);

CREATE TABLE IF NOT EXISTS error_group_minutes (
    fingerprint TEXT NOT NULL,
    minute      INTEGER NOT NULL,                -- start_ns // 60e9
    count       INTEGER NOT NULL,
    PRIMARY KEY (fingerprint, minute)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS error_group_minutes_by_minute ON error_group_minutes(minute);

ALTER TABLE spans ADD COLUMN error_group TEXT;
CREATE INDEX IF NOT EXISTS spans_by_error_group ON spans(error_group, start_ns)
    WHERE error_group IS NOT NULL;
"""

TABLES += ERROR_GROUPS

# Version 8: SLOs (issue 16).
# - spans.weight: how many calls a stored call stands for (1/p of the sampling that kept
#   it); NULL means 1.0 (every call recorded), so a store written without sampling pays
#   nothing but a NULL per call.
# - call_rollups: calls, failed calls, summed durations and the duration histogram per
#   minute, process and service, every count weighted by spans.weight; kept 30 days
#   (setting rollup_retention_days) where calls keep 6 hours, so an SLO's long windows
#   (28 days, the 3-day ticket pair) read them instead of raw calls. The writer keeps
#   them in the same transaction as the calls (exporters.rollups). One column per
#   bucket bound of exporters.columns.DURATION_BUCKETS_MS, cumulative: b<i> counts the
#   calls with duration_ms <= bound i (Prometheus's "le"). service_name '' for none
#   (a primary key column is never NULL).
CALL_ROLLUPS = f"""
ALTER TABLE spans ADD COLUMN weight REAL;

CREATE TABLE IF NOT EXISTS call_rollups (
    minute          INTEGER NOT NULL,           -- start_ns // 60e9
    process_id      INTEGER NOT NULL,           -- processes.id
    service_name    TEXT NOT NULL,              -- '' for none
    calls           REAL NOT NULL,              -- weighted
    errors          REAL NOT NULL,              -- weighted, status ERR
    duration_ms_sum REAL NOT NULL,              -- weighted
    {", ".join(f"{b} REAL NOT NULL DEFAULT 0" for b in ROLLUP_BUCKET_COLUMNS)},
    PRIMARY KEY (minute, process_id, service_name)
) WITHOUT ROWID;
-- An SLO's windows read one process's or one service's minutes (exporters.queries.slos);
-- a batch touches a few rows: the writer barely pays for these.
CREATE INDEX IF NOT EXISTS call_rollups_by_process ON call_rollups(process_id, minute);
CREATE INDEX IF NOT EXISTS call_rollups_by_service ON call_rollups(service_name, minute);
"""

TABLES += CALL_ROLLUPS
TABLES_V8 = TABLES  # what step 0 (the brief's store) builds before steps 1-8 run

# Version 9: a smaller call (issue 19: 0.7x version 8's bytes per call on the demo's mix,
# benchmarks/bench_store_size.py). The tables are rebuilt:
# - a variable's name and Data Type are one integer key into data_names (a store has a
#   few hundred); data_values holds (span, seq, name_id, data_value);
# - the data_values_by_name index goes (it was an eighth of the store): a name filter
#   reads process_names, the processes that ever had the variable (the writer adds a
#   pair in the same transaction as the calls; retention never deletes one), and walks
#   those processes' calls;
# - trace_id is its 16 bytes (a BLOB), not 32 hex digits; readers show it as hex;
#   spans_by_trace holds its last 8 bytes (TRACE_KEY): as unique as the whole among
#   a store's traces, half the index (a reader compares the whole id on the rows). The
#   last, not the first: a 64-bit trace id (Zipkin's, Jaeger's) widened to 128 bits has
#   a zero first half, and X-Ray's begins with its time;
# - the service name is an integer key into services, and spans_by_time carries it
#   (one byte or two a call, where an index of its own cost 20): the ?service= filter,
#   a walk in time order, tests it in the index, reading no row of another service;
# - spans.process_group goes: it is the process's (processes.process_group);
# - spans.outcome is NULL when it is its status's own (ok for OK, error for ERR): OUTCOME
#   reads it.
# The views keep their columns and values (a migrated row reads as it did).
# Without statistics SQLite weighs an index against the table by their declared column
# sizes; the plans of exporters.queries were tuned on version 8's spans, whose two text
# columns more made it look wider (a process's failures then read its partial index,
# spans_errors_by_process, not every call of spans_by_process). exception's declared size
# (VARCHAR(52): TEXT affinity, no limit) keeps that estimate as version 8's.
# A call's outcome (schema 9 stores NULL for its status's own).
OUTCOME = "coalesce({s}.outcome, CASE {s}.status WHEN 'ERR' THEN 'error' ELSE 'ok' END)"
# What spans_by_trace holds of a trace id (a reader names it as written here).
TRACE_KEY = "substr({col}, 9, 8)"
STORE_V9 = f"""
DROP VIEW IF EXISTS process_trace;
DROP VIEW IF EXISTS data_trace;
DROP VIEW IF EXISTS trace_rows;

CREATE TABLE IF NOT EXISTS data_names (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,                       -- INPUT | OUTPUT (Data Type)
    UNIQUE (name, kind)
);
CREATE TABLE IF NOT EXISTS process_names (
    process_id INTEGER NOT NULL,              -- processes.id
    name_id    INTEGER NOT NULL,              -- data_names.id
    PRIMARY KEY (process_id, name_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS process_names_by_name ON process_names(name_id, process_id);
CREATE TABLE IF NOT EXISTS services (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

INSERT OR IGNORE INTO data_names(name, kind)
    SELECT DISTINCT data, data_type FROM data_values ORDER BY data, data_type;
CREATE TABLE data_values_v9 (
    span       INTEGER NOT NULL,              -- spans.id
    seq        INTEGER NOT NULL,
    name_id    INTEGER NOT NULL,              -- data_names.id: Data and Data Type
    data_value TEXT NOT NULL,
    PRIMARY KEY (span, seq)
) WITHOUT ROWID;
INSERT INTO data_values_v9(span, seq, name_id, data_value)
    SELECT d.span, d.seq, n.id, d.data_value
    FROM data_values d JOIN data_names n ON n.name = d.data AND n.kind = d.data_type
    ORDER BY d.span, d.seq;
INSERT OR IGNORE INTO process_names(process_id, name_id)
    SELECT DISTINCT s.process_id, d.name_id FROM data_values_v9 d JOIN spans s ON s.id = d.span;
DROP TABLE data_values;
ALTER TABLE data_values_v9 RENAME TO data_values;

INSERT OR IGNORE INTO services(name)
    SELECT DISTINCT service_name FROM spans WHERE service_name IS NOT NULL ORDER BY 1;
-- A process with no group of its own takes its newest call's.
UPDATE processes SET process_group = (
    SELECT s.process_group FROM spans s WHERE s.process_id = processes.id
        AND s.process_group IS NOT NULL ORDER BY s.start_ns DESC LIMIT 1)
    WHERE process_group IS NULL;
CREATE TABLE spans_v9 (
    id             INTEGER PRIMARY KEY,
    span_id        INTEGER NOT NULL,          -- 64-bit OTel span id, signed
    trace_id       BLOB NOT NULL,             -- its 16 bytes
    parent_span_id INTEGER,
    start_ns       INTEGER NOT NULL,          -- UTC, ns since the epoch
    duration_ms    REAL NOT NULL,
    process_id     INTEGER NOT NULL REFERENCES processes(id),
    service_id     INTEGER,                   -- services.id
    status         TEXT NOT NULL,             -- OK | ERR
    outcome        TEXT,                      -- cancelled | closed | interrupted, or NULL:
                                              -- ok for OK, error for ERR (OUTCOME)
    exception_type TEXT,
    exception      VARCHAR(52),               -- (TEXT: the size is the planner's, see below)
    pid            INTEGER,
    error_group    TEXT,
    weight         REAL
);
INSERT INTO spans_v9(id, span_id, trace_id, parent_span_id, start_ns, duration_ms, process_id,
                     service_id, status, outcome, exception_type, exception, pid, error_group,
                     weight)
    SELECT s.id, s.span_id, otel_monitor_unhex(s.trace_id), s.parent_span_id, s.start_ns,
           s.duration_ms, s.process_id,
           (SELECT v.id FROM services v WHERE v.name = s.service_name), s.status,
           CASE WHEN s.outcome = CASE s.status WHEN 'ERR' THEN 'error' ELSE 'ok' END
                THEN NULL ELSE s.outcome END,
           s.exception_type, s.exception, s.pid, s.error_group, s.weight
    FROM spans s ORDER BY s.id;
DROP TABLE spans;
ALTER TABLE spans_v9 RENAME TO spans;
CREATE UNIQUE INDEX spans_by_span_id ON spans(span_id);
{ERROR_INDEX_BY_PROCESS}
{COVERING_INDEXES}
{SORT_INDEXES}
CREATE INDEX IF NOT EXISTS spans_by_trace ON spans({TRACE_KEY.format(col="trace_id")});
CREATE INDEX IF NOT EXISTS spans_by_error_group ON spans(error_group, start_ns)
    WHERE error_group IS NOT NULL;
DROP INDEX spans_by_time;
CREATE INDEX spans_by_time ON spans(start_ns, id, process_id, parent_span_id, service_id);
"""

TABLES += STORE_V9

# The stored trace id (16 bytes) as the 32 hex digits every reader shows.
TRACE_HEX = "lower(hex({col}))"

VIEWS = f"""
CREATE VIEW IF NOT EXISTS process_trace AS
SELECT {_TS.format(col="s.start_ns")} AS ts,
       p.name AS process, s.status, s.duration_ms, s.exception,
       printf('%016x', s.span_id) AS span_id, {TRACE_HEX.format(col="s.trace_id")} AS trace_id,
       CASE WHEN s.parent_span_id IS NULL THEN NULL ELSE printf('%016x', s.parent_span_id) END
           AS parent_span_id,
       p.process_group, v.name AS service_name, {OUTCOME.format(s="s")} AS outcome,
       s.exception_type, s.start_ns, s.pid,
       s.id
FROM spans s JOIN processes p ON p.id = s.process_id LEFT JOIN services v ON v.id = s.service_id;

CREATE VIEW IF NOT EXISTS data_trace AS
SELECT {_TS.format(col="s.start_ns")} AS ts,
       p.name AS process, n.name AS data, n.kind AS data_type, d.data_value, s.status,
       s.exception, printf('%016x', s.span_id) AS span_id,
       {TRACE_HEX.format(col="s.trace_id")} AS trace_id, s.start_ns, d.seq, s.id AS span
FROM data_values d JOIN data_names n ON n.id = d.name_id JOIN spans s ON s.id = d.span
JOIN processes p ON p.id = s.process_id;

-- Exactly the seven canonical columns, call by call in time order, each call's
-- variables in argument order (read through spans_by_time: no sort). A failed call with
-- no variable (no arguments, or inputs not logged) is one row with empty Data, Data
-- Type and Data Value, so no failure is missing from the table; an OK call with none
-- (a plain OTel span) has nothing to show and makes no row.
CREATE VIEW IF NOT EXISTS trace_rows AS
SELECT p.name AS "Process", coalesce(n.name, '') AS "Data",
       coalesce(n.kind, '') AS "Data Type", coalesce(d.data_value, '') AS "Data Value",
       {_ISO.format(col="s.start_ns")} AS "Timestamp",
       s.status AS "Status", coalesce(s.exception, '') AS "Exception"
FROM spans s JOIN processes p ON p.id = s.process_id LEFT JOIN data_values d ON d.span = s.id
LEFT JOIN data_names n ON n.id = d.name_id
WHERE d.span IS NOT NULL OR s.status = 'ERR'
ORDER BY s.start_ns, s.id, d.seq;

-- Feeds across the processes that tick them: the newest update wins.
CREATE VIEW IF NOT EXISTS feed_status AS
SELECT name, max(interval_s) AS interval_s, min(stale_after_s) AS stale_after_s,
       max(last_update_ns) AS last_update_ns,
       CASE WHEN max(last_update_ns) IS NULL THEN NULL
            ELSE {_ISO.format(col="max(last_update_ns)")} END AS last_update,
       sum(ticks) AS ticks, max(updated_ns) AS updated_ns, count(*) AS writers
FROM feeds GROUP BY name;

-- Alerts with a readable time, newest first.
CREATE VIEW IF NOT EXISTS alert_log AS
SELECT {_ISO.format(col="ts_ns")} AS ts, rule, action, key, target, status, attempts, count,
       summary, error, process, span_id, trace_id, feed, ts_ns, done_ns, host, pid, id
FROM alerts ORDER BY ts_ns DESC, id DESC;

-- Banners to show: raised flags (a row not refreshed for a while is a stopped process).
CREATE VIEW IF NOT EXISTS banners AS
SELECT name, host, pid, message, value, since_ns, updated_ns FROM flags WHERE raised = 1;

-- The brief's retention SQL deletes from its tables; keep that working on the views.
CREATE TRIGGER IF NOT EXISTS process_trace_delete INSTEAD OF DELETE ON process_trace
BEGIN
    DELETE FROM data_values WHERE span = OLD.id;
    DELETE FROM spans WHERE id = OLD.id;
END;
CREATE TRIGGER IF NOT EXISTS data_trace_delete INSTEAD OF DELETE ON data_trace
BEGIN
    DELETE FROM data_values WHERE span = OLD.span AND seq = OLD.seq;
END;
"""


# Version 0 is the brief's own MVP schema: process_trace / data_trace tables keyed
# on (ts, process) at second resolution, no meta table. Its rows move into the
# new tables; each (ts, process) key becomes one call with a fresh span id
# (exporters.merge reads such a store the same way, with ids from the call's content).
BRIEF_TABLES = frozenset({"process_trace", "data_trace"})
# The brief's text timestamp ('YYYY-MM-DD HH:MM:SS[.fff]', UTC) as integer nanoseconds.
BRIEF_TS_NS = (
    "unixepoch({col}) * 1000000000"
    " + CAST(round((strftime('%f', {col}) - CAST(strftime('%S', {col}) AS INTEGER))"
    " * 1000) AS INTEGER) * 1000000"
)
_FROM_BRIEF_SCHEMA = """
ALTER TABLE process_trace RENAME TO brief_process_trace;
ALTER TABLE data_trace RENAME TO brief_data_trace;
""" + TABLES_V8 + """
CREATE TEMP TABLE brief_calls AS
    SELECT ts, process, max(status) AS status, max(duration_ms) AS duration_ms,
           max(exception) AS exception
    FROM (SELECT ts, process, status, duration_ms, exception FROM brief_process_trace
          UNION ALL
          SELECT ts, process, status, 0.0, exception FROM brief_data_trace)
    GROUP BY ts, process;
INSERT OR IGNORE INTO processes(name) SELECT DISTINCT process FROM brief_calls;
INSERT INTO spans(id, span_id, trace_id, start_ns, duration_ms, process_id, status, outcome,
                  exception)
    SELECT c.rowid, random(), printf('%016x%016x', random(), random()),
           """ + BRIEF_TS_NS.format(col="c.ts") + """,
           coalesce(c.duration_ms, 0.0), p.id, c.status,
           CASE c.status WHEN 'ERR' THEN 'error' ELSE 'ok' END, c.exception
    FROM brief_calls c JOIN processes p ON p.name = c.process;
INSERT INTO data_values(span, seq, data, data_type, data_value)
    SELECT c.rowid, row_number() OVER (PARTITION BY c.rowid ORDER BY d.rowid),
           d.data, d.data_type, d.data_value
    FROM brief_data_trace d JOIN brief_calls c ON c.ts = d.ts AND c.process = d.process;
DROP TABLE brief_calls;
DROP TABLE brief_process_trace;
DROP TABLE brief_data_trace;
"""

# 1 -> 2: the state tables; trace_rows is made anew (with VIEWS, after the steps) so a
# version-1 store gets its call-by-call order too.
_V1_TO_V2 = "DROP VIEW IF EXISTS trace_rows;\n" + STATE_TABLES

# version -> SQL that brings a store of that version to version + 1.
# 3 -> 4 also makes trace_rows anew: it keeps calls that have no variable.
MIGRATIONS: dict[int, str] = {0: _FROM_BRIEF_SCHEMA, 1: _V1_TO_V2, 2: ERROR_INDEX_BY_PROCESS,
                              3: OTLP_HEALTH + COVERING_INDEXES + SORT_INDEXES
                              + "DROP VIEW IF EXISTS trace_rows;\n",
                              4: TRACE_INDEX, 5: RECORDING_HEALTH, 6: ERROR_GROUPS,
                              7: CALL_ROLLUPS, 8: STORE_V9}


class Executor(Protocol):
    """What the migration needs of a connection (``exporters.database.Database``)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def split_script(self, script: str) -> list[str]: ...

    def new_store_tables(self) -> str: ...


def ensure_schema(db: Executor, path: str) -> None:
    """Create the schema in an empty store, migrate an older one, refuse a newer one.

    Run inside one IMMEDIATE transaction (``Database`` opens it) so concurrent
    openers serialise and a failed migration leaves the file as it was.
    """
    version = stored_version(db, path)
    if version is None:
        _run(db, db.new_store_tables() + VIEWS)
        db.execute(
            "INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
    elif version > SCHEMA_VERSION:
        raise SchemaError(
            f"{path}: store schema version {version} is newer than this otel-monitor "
            f"understands ({SCHEMA_VERSION}); upgrade otel-monitor or use another db_path"
        )
    elif version < SCHEMA_VERSION:
        # A store of an earlier build of version 4 (or 5) runs the 3 -> 4 step again
        # (version 9 remakes every index of the calls: its stores are not checked).
        first = min(version, 3) if version < 4 or _missing_v4_indexes(db) else version
        for step in range(first, SCHEMA_VERSION):
            _run(db, MIGRATIONS[step])
        _run(db, VIEWS)
        db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )


def _missing_v4_indexes(db: Executor) -> bool:
    """A store made by an earlier build of version 4, before its step had its final
    indexes: run the step again (every statement in it is safe twice)."""
    stored = {name: " ".join(sql.split()) for name, sql in db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    if "spans_by_process_duration" in stored or "spans_errors_by_duration" in stored:
        return True
    return any(stored.get(name) != sql for name, sql in _V4_INDEXES.items())


# The indexes the 3 -> 4 step leaves, as sqlite_master keeps their statements.
_V4_INDEXES = {
    m["name"]: " ".join(m[0].replace("IF NOT EXISTS ", "").split())
    for m in re.finditer(r"CREATE INDEX (?:IF NOT EXISTS )?(?P<name>\w+)[^;]*",
                         COVERING_INDEXES + SORT_INDEXES)}


def stored_version(db: Executor, path: str) -> int | None:
    """The schema version of the store ``db`` reads: 0 for the brief's MVP store, None
    for an empty file; ``SchemaError`` when it is not a store of ours or the brief's."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in tables:
        if tables == BRIEF_TABLES:
            return 0  # the brief's MVP store
        if tables:
            raise SchemaError(
                f"{path}: not an otel-monitor store (it has tables {sorted(tables)} "
                "and no schema version); refusing to write to it"
            )
        return None
    rows = db.execute("SELECT value FROM meta WHERE key = 'schema_version'")
    row = rows[0] if rows else None
    if row is None or not str(row[0]).isdigit():
        raise SchemaError(f"{path}: store has no valid schema_version; refusing to write to it")
    return int(row[0])


def _run(db: Executor, script: str) -> None:
    """Run a multi-statement script inside the caller's transaction, one by one."""
    for statement in db.split_script(script):
        added = _ADD_COLUMN.match(statement)
        if added and added["column"] in {
                r[1] for r in db.execute(f"PRAGMA table_info({added['table']})")}:
            continue  # already there: migrations stay safe to run twice
        db.execute(statement)


_ADD_COLUMN = re.compile(r"ALTER TABLE (?P<table>\w+) ADD COLUMN (?P<column>\w+)", re.I)
