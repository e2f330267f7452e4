"""The closed vocabulary of legs: their names, markers and latency budgets (SPEC section 2).

Dashboards, alerts and the audit trail key on these names, so the set is closed: the
project's tests fail when a ``test_<leg>`` exists without an entry here, or the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config validates leg names and intervals against this table at start
    from synthetics.config import ProbeConfig


@dataclass(frozen=True)
class Leg:
    name: str
    marker: str  # "prod_safe" or "upgrade"
    slow_seconds: float  # default latency budget; over it but correct is ``degraded``
    budget_override: str = "http"  # which variable overrides the budget: http, upgrade or none
    # At most this many exchanges, each bounded by the HTTP timeout: the leg's worst case short of
    # its leg timeout (None: bounded by the leg timeout alone, as the money-path legs' waits are).
    exchanges: int | None = None
    # How often it runs by default (SPEC 18): what it checks changes that fast, or costs that much.
    interval_seconds: float = 300.0
    providers: tuple[str, ...] | None = None  # the providers it exists for (None: every one)


LEGS: dict[str, Leg] = {
    leg.name: leg
    for leg in (
        Leg("checkout_reachable", "prod_safe", 5.0, exchanges=1, interval_seconds=60.0),
        Leg("billing_state", "prod_safe", 2.0, exchanges=1, interval_seconds=60.0),
        Leg("invoices_reachable", "prod_safe", 2.0, exchanges=1, interval_seconds=60.0),
        Leg("webhook_security", "prod_safe", 2.0, exchanges=3, interval_seconds=60.0),  # unsigned, forged, stale
        Leg("upgrade_webhook_e2e", "upgrade", 8.0, "upgrade", interval_seconds=300.0),
        # One handshake; a certificate's expiry moves in days.
        Leg("tls_certificate", "prod_safe", 2.0, "none", exchanges=1, interval_seconds=900.0),
        Leg("webhook_replay", "upgrade", 10.0, "none", interval_seconds=300.0),
        # The provider's view (SPEC 17): up to 10 pages of endpoints and 10 of undelivered events.
        Leg("provider_webhook_health", "prod_safe", 5.0, "none", exchanges=20, interval_seconds=120.0,
            providers=("stripe", "razorpay")),
        # Stripe delivers the charge itself (TEST mode): bounded by the leg timeout, as the money path is.
        Leg("provider_roundtrip", "upgrade", 30.0, "none", interval_seconds=900.0, providers=("stripe",)),
    )
}

RESULTS = ("pass", "degraded", "fail")
MARKERS = ("prod_safe", "upgrade")


def leg_for_test(function_name: str) -> Leg | None:
    """The leg a test function implements (``test_<leg>``), or ``None`` for any other test."""
    if not function_name.startswith("test_"):
        return None
    return LEGS.get(function_name.removeprefix("test_"))


def slow_threshold(leg: Leg, config: ProbeConfig) -> float:
    """The budget in force: the spec's default unless an override variable is set."""
    if leg.budget_override == "upgrade":
        return config.upgrade_slow_seconds or leg.slow_seconds
    if leg.budget_override == "http":
        return config.slow_seconds or leg.slow_seconds
    return leg.slow_seconds


LEG_OVERHEAD_SECONDS = 1.0  # fixtures and judging around a leg's exchanges, generously


def worst_case_seconds(leg: Leg, config: ProbeConfig) -> float:
    """How long one attempt of ``leg`` can take at most: its exchanges at the HTTP timeout each, never
    more than the leg timeout. What a confirmation retry must leave room for (SPEC 15)."""
    bound = config.leg_timeout_seconds
    if leg.exchanges is not None:
        bound = min(bound, leg.exchanges * config.http_timeout_seconds + LEG_OVERHEAD_SECONDS)
    return bound
