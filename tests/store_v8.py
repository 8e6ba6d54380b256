"""A store as schema version 8 made it (before issue 19's smaller calls): its tables,
indexes and views, frozen here, for tests of the migrations from it and from earlier
versions (made by changing a version-8 store back)."""
from __future__ import annotations

import sqlite3

from exporters.schema import _ISO, _TS, TABLES_V8

# Version 8's views, as exporters/schema.py had them.
VIEWS_V8 = f"""
CREATE VIEW IF NOT EXISTS process_trace AS
SELECT {_TS.format(col="s.start_ns")} AS ts,
       p.name AS process, s.status, s.duration_ms, s.exception,
       printf('%016x', s.span_id) AS span_id, s.trace_id,
       CASE WHEN s.parent_span_id IS NULL THEN NULL ELSE printf('%016x', s.parent_span_id) END
           AS parent_span_id,
       s.process_group, s.service_name, s.outcome, s.exception_type, s.start_ns, s.pid, s.id
FROM spans s JOIN processes p ON p.id = s.process_id;

CREATE VIEW IF NOT EXISTS data_trace AS
SELECT {_TS.format(col="s.start_ns")} AS ts,
       p.name AS process, d.data, d.data_type, d.data_value, s.status, s.exception,
       printf('%016x', s.span_id) AS span_id, s.trace_id, s.start_ns, d.seq, s.id AS span
FROM data_values d JOIN spans s ON s.id = d.span JOIN processes p ON p.id = s.process_id;

-- Exactly the seven canonical columns, call by call in time order, each call's
-- variables in argument order (read through spans_by_time: no sort). A failed call with
-- no variable (no arguments, or inputs not logged) is one row with empty Data, Data
-- Type and Data Value, so no failure is missing from the table; an OK call with none
-- (a plain OTel span) has nothing to show and makes no row.
CREATE VIEW IF NOT EXISTS trace_rows AS
SELECT p.name AS "Process", coalesce(d.data, '') AS "Data",
       coalesce(d.data_type, '') AS "Data Type", coalesce(d.data_value, '') AS "Data Value",
       {_ISO.format(col="s.start_ns")} AS "Timestamp",
       s.status AS "Status", coalesce(s.exception, '') AS "Exception"
FROM spans s JOIN processes p ON p.id = s.process_id LEFT JOIN data_values d ON d.span = s.id
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



def make_v8_store(path) -> None:
    """An empty version-8 store at ``path`` (WAL, as the writer leaves one)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript("BEGIN;" + TABLES_V8 + VIEWS_V8 +
                           "INSERT INTO meta(key, value) VALUES ('schema_version', '8');"
                           "COMMIT;")
    finally:
        conn.close()
