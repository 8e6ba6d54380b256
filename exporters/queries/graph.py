"""The dependency graph: processes and feeds as nodes; parent/child calls and feed
consumption as edges."""
from __future__ import annotations

import time
from typing import Any

from ..database import Database
from .filters import NS, dicts, plan
from .ribbon import RibbonLevels, feeds

# The window's children and their parents' ids come from spans_by_time alone; each
# parent is one lookup by span id; names are joined to the grouped edges, not to every
# call.
EDGES_SQL = """SELECT pp.name AS source, pc.name AS target, e.calls
               FROM (SELECT par.process_id AS parent, c.process_id AS child,
                            count(*) AS calls
                     FROM spans c JOIN spans par ON par.span_id = c.parent_span_id
                     WHERE c.start_ns >= ? AND c.parent_span_id IS NOT NULL
                     GROUP BY par.process_id, c.process_id) e
               JOIN processes pp ON pp.id = e.parent JOIN processes pc ON pc.id = e.child"""


def graph(db: Database, *, window_s: float, now_ns: int | None,
          levels: RibbonLevels = RibbonLevels()) -> dict[str, Any]:
    """Nodes (processes with their last latency, calls, errors and error rate in the
    window; feeds with
    their stale flag) and edges (process -> process from parent/child spans in the
    window; feed -> process from feed consumption)."""
    now = now_ns or time.time_ns()
    since = now - int(window_s * NS)
    edges = [dict(e, kind="call") for e in dicts(db, EDGES_SQL, (since,))]
    nodes = {}
    for p in dicts(db,
            """SELECT p.name, p.process_group,
                      (SELECT s.duration_ms FROM spans s WHERE s.process_id = p.id
                          AND s.start_ns >= ? ORDER BY s.start_ns DESC LIMIT 1)
                          AS last_latency_ms,
                      (SELECT count(*) FROM spans s WHERE s.process_id = p.id
                          AND s.start_ns >= ? AND s.status = 'ERR') AS errors,
                      (SELECT count(*) FROM spans s WHERE s.process_id = p.id
                          AND s.start_ns >= ?) AS calls
               FROM processes p""", (since, since, since)):
        p["error_rate"] = p["errors"] / p["calls"] if p["calls"] else None
        nodes[p["name"]] = dict(p, id=p["name"], kind="process")
    by_name = {f["name"]: f for f in feeds(db, now_ns=now, levels=levels)}
    for f in by_name.values():
        nodes["feed:" + f["name"]] = {"id": "feed:" + f["name"], "name": f["name"],
                                      "kind": "feed", "stale": f["stale"],
                                      "closed": f["closed"],
                                      "level": f["level"], "age_s": f["age_s"]}
    for e in dicts(db, "SELECT feed, process, declared, called FROM feed_edges"):
        feed = by_name.get(e["feed"])
        edges.append({"source": "feed:" + e["feed"], "target": e["process"], "kind": "feed",
                      "declared": bool(e["declared"]), "called": bool(e["called"]),
                      "stale": bool(feed and feed["stale"]),
                      "closed": bool(feed and feed["closed"])})
    active = {e["source"] for e in edges} | {e["target"] for e in edges}
    shown = [n for k, n in nodes.items()
             if k in active or n["kind"] == "feed" or n.get("last_latency_ms") is not None]
    return {"since_ns": since, "until_ns": now, "nodes": shown, "edges": edges}


def explain_graph(db: Database) -> str:
    return plan(db, EDGES_SQL, (0,))
