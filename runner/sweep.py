"""Before the legs: reap cohort teams a killed run left behind (and nothing else)."""

from __future__ import annotations

from synthetics import cohort, db
from synthetics.secret import Secret


def sweep_orphans(database_url: Secret, older_than_seconds: float) -> int:
    with db.session(database_url) as conn:
        return cohort.sweep(conn, older_than_seconds)
