"""README's settings table is the one rendered from the settings' declaration: a setting
added, renamed or changed in ``otel_monitor/settings.py`` fails here until README says so."""
from __future__ import annotations

from pathlib import Path

from otel_monitor.settings import SETTINGS, settings_table_markdown

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN = "<!-- settings table: rendered by otel_monitor.settings.settings_table_markdown() -->\n"
END = "<!-- end of settings table -->"


def _readme_table() -> str:
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, "README lost its settings table markers"
    return text.split(BEGIN, 1)[1].split(END, 1)[0]


def test_readme_settings_table_is_the_rendered_one():
    assert _readme_table() == settings_table_markdown(), (
        "README's settings table drifted from otel_monitor/settings.py: replace it with "
        "the output of `otel-monitor config --markdown`")


def test_the_table_has_one_row_per_setting_with_its_variable():
    rows = [line for line in settings_table_markdown().splitlines()[2:]]
    assert len(rows) == len(SETTINGS)
    for row, spec in zip(rows, SETTINGS.values()):
        assert row.startswith(f"| `{spec.name}` | `{spec.env}` |")
