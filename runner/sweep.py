"""Reap what a killed run left behind, and nothing else: cohort teams (before the legs, and on
``payment-probe sweep``), and synthetic test customers at Stripe (``payment-probe sweep``)."""

from __future__ import annotations

import time

from synthetics import cohort, db
from synthetics.config import ProbeConfig
from synthetics.secret import Secret


def sweep_orphans(database_url: Secret, older_than_seconds: float) -> int:
    with db.session(database_url) as conn:
        return cohort.sweep(conn, older_than_seconds)


def sweep_provider_customers(config: ProbeConfig) -> int:
    """Delete leftover synthetic test customers at Stripe (``metadata[payment_probe]=synthetic``, older than
    the round trip's wait) that a killed ``provider_roundtrip`` left: TEST mode only, never a live key.
    Returns how many were deleted; raises ``SweepError`` when the provider could not be asked."""
    if config.provider != "stripe" or config.provider_test_key is None or config.provider_api_url is None:
        return 0
    import pytest

    from synthetics.provider_roundtrip import SYNTHETIC, StripeTest, is_live

    if is_live(config.provider_test_key.reveal()):  # load_config refuses it already; never act on one
        raise SweepError("PAYMENT_PROBE_PROVIDER_TEST_KEY is a live key")
    stripe = StripeTest(config, lambda _phases, _answered: None)
    cutoff = time.time() - config.roundtrip_wait_seconds
    deleted = 0
    try:
        after: str | None = None
        for _page in range(10):
            status, page = stripe.call("GET", "/v1/customers",
                                       query={"limit": 100, **({"starting_after": after} if after else {})})
            data = page.get("data") if isinstance(page, dict) and status == 200 else None
            if not isinstance(data, list):
                raise SweepError(f"GET /v1/customers answered {status}")
            for customer in data:
                metadata = customer.get("metadata") or {}
                if metadata.get("payment_probe") == SYNTHETIC and float(customer.get("created") or 0) < cutoff \
                        and not customer.get("livemode"):
                    gone, _ = stripe.call("DELETE", f"/v1/customers/{customer['id']}")
                    deleted += 1 if 200 <= gone < 300 else 0
            if not page.get("has_more") or not data:
                break
            after = str(data[-1].get("id"))
    except pytest.skip.Exception as exc:  # the provider's own trouble, as the leg would say it
        raise SweepError(str(exc.msg)) from None
    return deleted


class SweepError(RuntimeError):
    pass
