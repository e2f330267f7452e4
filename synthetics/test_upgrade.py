"""The money path end to end: a signed TEST-mode charge must upgrade a cohort team in the DB."""

from __future__ import annotations

import time

import pytest

from synthetics import upgrade
from synthetics.config import ProbeConfig
from synthetics.delivery import deliver, provider_of
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
    event = provider_of(probe_config).upgrade_event(cohort_team.id, upgrade_settings.plan_id, time.time())
    started = time.perf_counter()
    # Signed inside the client: the signature never becomes a local that a report could print.
    response = deliver(probe_http, probe_config, event, "valid", secret=upgrade_settings.webhook_secret)
    upgrade.expect_acknowledged(response.status)
    tier = upgrade.wait_for(cohort_team, probe_config.expected_tier, probe_config.upgrade_wait_seconds)
    leg_record.set_latency(time.perf_counter() - started)
    leg_record.note("observed_tier", tier or "missing")
    upgrade.expect_tier(tier, probe_config.expected_tier, probe_config.upgrade_wait_seconds)
