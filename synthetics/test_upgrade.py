"""The money path end to end: a signed TEST-mode charge must upgrade a cohort team in the DB."""

from __future__ import annotations

import time

import psycopg
import pytest

from synthetics import cohort, db, signing
from synthetics.config import ProbeConfig
from synthetics.failures import LegFailed
from synthetics.http import ProbeClient
from synthetics.plugin import CohortTeam, LegRecord, UpgradeSettings


@pytest.mark.upgrade
def test_upgrade_webhook_e2e(
    upgrade_settings: UpgradeSettings,
    cohort_team: CohortTeam,
    probe_http: ProbeClient,
    probe_config: ProbeConfig,
    leg_record: LegRecord,
) -> None:
    body = signing.charged_event(cohort_team.id, upgrade_settings.plan_id)
    started = time.perf_counter()
    # Signed inside the client: the signature never becomes a local that a report could print.
    response = probe_http.request(
        "POST", probe_config.webhook_path, body=body,
        headers={"X-Razorpay-Event-Id": signing.event_id()}, sign_with=upgrade_settings.webhook_secret,
    )
    if response.status != 200:
        # Razorpay retries any non-200 for a day: a 500 after applying is still an incident.
        raise LegFailed(f"webhook_status:{response.status}", "signed TEST event not acknowledged")
    try:
        tier = cohort.wait_for_tier(
            cohort_team.connection, cohort_team.id, probe_config.expected_tier, probe_config.upgrade_wait_seconds,
        )
    except (psycopg.Error, db.DatabaseOut) as exc:
        raise LegFailed("db_error", f"polling teams failed ({type(exc).__name__})") from None
    leg_record.set_latency(time.perf_counter() - started)
    leg_record.note("observed_tier", tier or "missing")
    if tier != probe_config.expected_tier:
        raise LegFailed(
            "tier_not_flipped",
            f"plan_tier is {tier!r}, expected {probe_config.expected_tier!r} "
            f"after {probe_config.upgrade_wait_seconds:g}s",
        )
