"""Cohort teams: the throwaway ``teams`` rows the upgrade leg upgrades, and their reaping.

Every statement that deletes is pinned to ``is_test_cohort`` (and, for the sweep, to the
``payment-probe-cohort-`` name prefix), so the probe can never remove a customer's team.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

from synthetics import db

COHORT_PREFIX = "payment-probe-cohort-"


def cohort_name(run_id: str) -> str:
    return f"{COHORT_PREFIX}{run_id}-{secrets.token_hex(4)}"


def mint(conn: Any, run_id: str) -> str:
    """Insert a fresh hobby-tier cohort team and return its id."""
    team_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO teams (id, name, plan_tier, is_test_cohort) VALUES (%s, %s, 'hobby', true)",
        (team_id, cohort_name(run_id)),
    )
    return team_id


def tier_of(conn: Any, team_id: str) -> str | None:
    row = conn.execute("SELECT plan_tier FROM teams WHERE id = %s", (team_id,)).fetchone()
    return None if row is None else str(row[0])


def wait_for_tier(conn: Any, team_id: str, expected: str, wait_seconds: float) -> str | None:
    """Poll until the tier equals ``expected`` or the wait runs out; return the last tier seen.

    Each poll is its own guarded statement: a database that freezes mid-poll is found out within
    one statement's bound, not after the whole wait plus a guard."""
    deadline = time.monotonic() + wait_seconds
    pause = 0.05
    while True:
        with db.guard(conn, db.STATEMENT_GUARD_SECONDS):
            tier = tier_of(conn, team_id)
        if tier == expected:
            return tier
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return tier
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.5)


def reap(conn: Any, team_id: str) -> int:
    """Delete one cohort team; a non-cohort row with that id is left alone."""
    cur = conn.execute("DELETE FROM teams WHERE id = %s AND is_test_cohort", (team_id,))
    return int(cur.rowcount)


def still_exists(conn: Any, team_id: str) -> bool:
    """After a reap that deleted nothing: is the team still there (no longer a cohort row, or
    hidden from the DELETE by row-level security)? Then it was left behind."""
    return conn.execute("SELECT 1 FROM teams WHERE id = %s", (team_id,)).fetchone() is not None


def sweep(conn: Any, older_than_seconds: float) -> int:
    """Reap cohort teams a killed run left behind; touch nothing else."""
    cur = conn.execute(
        "DELETE FROM teams WHERE is_test_cohort AND starts_with(name, %s) "
        "AND created_at < now() - make_interval(secs => %s)",
        (COHORT_PREFIX, older_than_seconds),
    )
    return int(cur.rowcount)
