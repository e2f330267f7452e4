"""Before the legs: reap cohort teams a killed run left behind (and nothing else)."""

from __future__ import annotations

from synthetics import cohort


def sweep_orphans(database_url: str, older_than_seconds: float) -> int:
    with cohort.connect(database_url) as conn:
        return cohort.sweep(conn, older_than_seconds)
