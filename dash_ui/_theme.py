"""Colour tokens and theme settings of the Dash UI (DESIGN.md, "Server and UI").

The Bootstrap Darkly CSS is vendored in ``dash_ui/assets/bootstrap.min.css`` (from the
npm package ``bootswatch@5``, its Google Fonts import removed), so the UI never asks a CDN.
"""
from __future__ import annotations

TOKENS = {"bg": "#0d1117", "accent": "#3e8ef7", "ok": "#2dc26b", "err": "#e55353", "stale": "#f0ad4e",
          "closed": "#6e7681"}  # closed: a feed outside its hours (grey)

# badge level (TraceQueries.health) -> colour token
LEVEL_COLOURS = {"ok": TOKENS["ok"], "amber": TOKENS["stale"], "red": TOKENS["err"],
                 "closed": TOKENS["closed"]}

PYGMENTS_STYLE = "monokai"  # dark source highlighting in the drill-down
