"""provider_roundtrip (SPEC 17): Stripe itself delivers the charge; the tier must flip, and flip back."""

from __future__ import annotations

import sys
import time

import pytest

from synthetics import cohort, reasons, upgrade
from synthetics.config import ProbeConfig
from synthetics.failures import LegFailed
from synthetics.plugin import CohortTeam, LegRecord, RoundtripSettings
from synthetics.provider_roundtrip import SYNTHETIC, StripeTest


@pytest.mark.upgrade
def test_provider_roundtrip(roundtrip_settings: RoundtripSettings, roundtrip_team: CohortTeam,
                            probe_config: ProbeConfig, leg_record: LegRecord, run_id: str) -> None:
    stripe = StripeTest(probe_config, leg_record.add_phases)
    team, plan = roundtrip_team, roundtrip_settings.plan_id
    wait = probe_config.roundtrip_wait_seconds
    tagged = {"metadata[team_id]": team.id, "metadata[payment_probe]": SYNTHETIC}
    key = f"payment-probe-{run_id}-{team.id}"  # each attempt has its own team: its own idempotency keys
    since, started = time.time(), time.perf_counter()
    customer_id: str | None = None
    try:
        customer = stripe.create("/v1/customers", {
            "name": cohort.cohort_name(run_id), **tagged, "payment_method": "pm_card_visa",
            "invoice_settings[default_payment_method]": "pm_card_visa"}, f"{key}-customer")
        customer_id = str(customer["id"])
        leg_record.note("customer_id", customer_id)
        subscription = stripe.create("/v1/subscriptions", {
            "customer": customer_id, "items[0][price]": plan, **tagged,
            "payment_behavior": "error_if_incomplete"}, f"{key}-subscription")
        subscription_id = str(subscription["id"])
        leg_record.note("subscription_id", subscription_id)
        # The provider delivers invoice.paid itself; the database is the truth.
        tier = upgrade.wait_for(team, probe_config.expected_tier, wait)
        leg_record.set_latency(time.perf_counter() - started)
        if tier != probe_config.expected_tier:
            event = stripe.invoice_paid_delivery(subscription_id, since)
            if event is None:
                raise LegFailed(reasons.DELIVERY_MISSING, f"the provider created no invoice.paid for {subscription_id}")
            leg_record.note("event_id", str(event.get("id", "")))
            if int(event.get("pending_webhooks") or 0) > 0:
                raise LegFailed(reasons.DELIVERY_REJECTED, f"the provider's own signed {event.get('id')} was not "
                                "acknowledged: its secret, URL, a proxy or the handler is wrong, and every real "
                                "payment meets the same", severity="critical")
            upgrade.expect_tier(tier, probe_config.expected_tier, wait)
        status, _answer = stripe.call("DELETE", f"/v1/subscriptions/{subscription_id}")
        if not 200 <= status < 300:
            raise LegFailed(reasons.provider_rejected(f"http_status_{status}"),
                            f"DELETE /v1/subscriptions/{subscription_id}")
        tier = upgrade.wait_for(team, probe_config.cancelled_tier, wait)
        upgrade.expect_tier(tier, probe_config.cancelled_tier, wait, reason=reasons.CANCEL_NOT_APPLIED)
    finally:
        if customer_id is not None:
            _reap_customer(stripe, customer_id, failing=sys.exc_info()[0] is not None)


def _reap_customer(stripe: StripeTest, customer_id: str, *, failing: bool) -> None:
    """Delete the customer at the provider (which ends anything left of it), on every path. A reap that
    fails is ``reap_failed``, unless the leg already failed for its own reason (that one is kept)."""
    try:
        status, _ = stripe.call("DELETE", f"/v1/customers/{customer_id}")
        deleted = 200 <= status < 300 or status == 404
    except BaseException:  # the provider's trouble (a degrade) must not hide the leg's own reason
        deleted = False
    if not deleted and not failing:
        raise LegFailed(reasons.REAP_FAILED,
                        f"the test customer {customer_id} was not deleted; payment-probe sweep will")
