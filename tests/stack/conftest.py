"""Fixtures of the stack tests: Debian's prometheus and promtool, skipped with the install
hint when absent. Paths and helpers live in stack_files (a conftest is not importable by
name once several test folders have one)."""
from __future__ import annotations

import shutil

import pytest

INSTALL_HINT = "not installed (scripts/install-system-deps.sh installs Debian's prometheus)"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} {INSTALL_HINT}")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return _tool("prometheus")
