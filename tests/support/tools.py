"""The Debian binaries the alerting tests run (promtool, prometheus, alertmanager, amtool), and the rules."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "docker" / "prometheus" / "alerts.yml"


def tool(name: str) -> str:
    """The Debian binary; absent only on a developer machine (CI installs it, and fails without)."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (Debian packages prometheus, prometheus-alertmanager)")
        pytest.skip(f"{name} not installed: apt-get install prometheus prometheus-alertmanager")
    return path


def rules_in_seconds() -> str:
    """The shipped rules, whose windows follow the intervals the runners export (1 s in these drills,
    SPEC 18): only the one-minute hold before a silence pages is made a second."""
    rules = RULES.read_text()
    assert rules.count("for: 1m") == 2
    return rules.replace("for: 1m", "for: 1s")
