"""What the two money-path legs (``upgrade_webhook_e2e``, ``webhook_replay``) judge alike."""

from __future__ import annotations

import time

import psycopg

from synthetics import cohort, db, reasons
from synthetics.failures import LegFailed
from synthetics.plugin import CohortTeam


def expect_acknowledged(status: int, reason: str | None = None) -> None:
    """Anything but 200 to a signed TEST event: providers retry a non-2xx for a day or more, so a
    500 after applying is still an incident (``webhook_status:N``)."""
    if status != 200:
        raise LegFailed(reason or reasons.webhook_status(status), f"signed TEST event answered {status}, not 200")


def wait_for(team: CohortTeam, tier: str, seconds: float) -> str | None:
    """Poll the team's tier until it is ``tier`` or ``seconds`` pass; the database is the truth."""
    try:
        return cohort.wait_for_tier(team.connection, team.id, tier, seconds)
    except (psycopg.Error, db.DatabaseOut) as exc:
        raise LegFailed(reasons.DB_ERROR, f"polling teams failed ({type(exc).__name__})") from None


def expect_tier(tier: str | None, expected: str, seconds: float, reason: str = reasons.TIER_NOT_FLIPPED) -> None:
    if tier != expected:
        raise LegFailed(reason, f"plan_tier is {tier!r}, expected {expected!r} after {seconds:g}s")


def hold(team: CohortTeam, tier: str, forbidden: str, seconds: float) -> str | None:
    """Watch the tier for ``seconds``; return it the moment it becomes ``forbidden`` (else the last seen)."""
    deadline = time.monotonic() + seconds
    seen: str | None = tier
    while True:
        try:
            with db.guard(team.connection, db.STATEMENT_GUARD_SECONDS):
                seen = cohort.tier_of(team.connection, team.id)
        except (psycopg.Error, db.DatabaseOut) as exc:
            raise LegFailed(reasons.DB_ERROR, f"polling teams failed ({type(exc).__name__})") from None
        if seen == forbidden or time.monotonic() >= deadline:
            return seen
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
