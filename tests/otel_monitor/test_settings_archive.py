"""The archive settings (issue 17): on by default, beside the store unless named."""
from __future__ import annotations

import os

from otel_monitor.settings import load_settings


def test_archive_is_on_by_default_beside_the_store():
    s = load_settings({"db_path": os.path.join("logs", "core_logs.db")})
    assert s.archive_enabled is True
    assert s.archive_path == os.path.join("logs", "core_logs-archive")
    assert s.archive_retention_days == 30.0


def test_archive_dir_and_off():
    assert load_settings({"archive_dir": "/srv/cold"}).archive_path == "/srv/cold"
    assert load_settings({"archive_enabled": False}).archive_path is None
