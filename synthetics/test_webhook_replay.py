"""A provider's retry of an event already applied must not apply it again (SPEC section 14, leg 7).

Providers deliver at least once (Razorpay retries a non-2xx for 24 hours, Stripe for 3 days), so
a handler that applies an upgrade twice resurrects a cancelled subscription: the leg upgrades a
cohort team, cancels that subscription, then delivers the upgrade again exactly as the provider's
retry would (same bytes, same event id; re-signed with a fresh time where the scheme signs time)
and holds the tier at the cancelled tier. The upgrade, the cancellation and the retry name one
subscription, so an API that keys on the subscription applies the cancellation. The hold lasts the
longer of the settle time and twice the time the upgrade took to apply in this run: an API that
applies events asynchronously applies a duplicate as late as the original.
"""

from __future__ import annotations

import time

import pytest

from synthetics import reasons, upgrade
from synthetics.config import ProbeConfig
from synthetics.delivery import deliver, provider_of
from synthetics.failures import LegFailed
from synthetics.http import ProbeClient
from synthetics.plugin import CohortTeam, LegRecord, UpgradeSettings


@pytest.mark.upgrade
def test_webhook_replay(
    upgrade_settings: UpgradeSettings,
    cohort_team: CohortTeam,
    probe_http: ProbeClient,
    probe_config: ProbeConfig,
    leg_record: LegRecord,
) -> None:
    provider = provider_of(probe_config)
    secret, wait = upgrade_settings.webhook_secret, probe_config.upgrade_wait_seconds
    subscription = provider.new_subscription_id()
    charged = provider.upgrade_event(cohort_team.id, upgrade_settings.plan_id, time.time(), subscription)
    started = time.perf_counter()
    try:
        upgrade.expect_acknowledged(deliver(probe_http, probe_config, charged, "valid", secret=secret).status)
        upgrade.expect_tier(upgrade.wait_for(cohort_team, probe_config.expected_tier, wait),
                            probe_config.expected_tier, wait)
        applied_after = time.perf_counter() - started
        leg_record.note("upgrade_applied_seconds", round(applied_after, 3))

        cancelled = provider.cancel_event(cohort_team.id, upgrade_settings.plan_id, time.time(), subscription)
        status = deliver(probe_http, probe_config, cancelled, "valid", secret=secret).status
        leg_record.note("cancel_status", status)
        if status != 200:
            raise LegFailed(reasons.CANCEL_NOT_APPLIED, f"the cancellation was answered {status}, not 200")
        upgrade.expect_tier(upgrade.wait_for(cohort_team, probe_config.cancelled_tier, wait),
                            probe_config.cancelled_tier, wait, reason=reasons.CANCEL_NOT_APPLIED)

        # The retry: the same bytes and id; a scheme that signs time signs now, as the provider would.
        retry = deliver(probe_http, probe_config, charged, "valid", secret=secret)
        leg_record.note("replay_status", retry.status)
        if not 200 <= retry.status < 300:
            raise LegFailed(reasons.replay_status(retry.status),
                            "a retried event must be acknowledged (a non-2xx makes the provider retry for hours)")
        watch = max(probe_config.replay_settle_seconds, 2 * applied_after)
        leg_record.note("replay_watch_seconds", round(watch, 3))
        seen = upgrade.hold(cohort_team, probe_config.cancelled_tier, probe_config.expected_tier, watch)
        leg_record.note("tier_after_replay", seen or "missing")
        if seen == probe_config.expected_tier:
            raise LegFailed(reasons.REPLAY_APPLIED, f"the retried {provider.name} event {charged.event_id} was applied "
                            f"again within {watch:.1f}s: the cancelled team is {seen!r}", severity="critical")
    finally:
        # Steps 2-4 as wall time, as the upgrade leg's is its delivery and wait: the retry's own
        # network time must not overwrite it (an 11 s watch is not a 0.02 s leg). A leg that got
        # no answer at all keeps having no latency.
        if leg_record.latency_seconds is not None:
            leg_record.set_latency(time.perf_counter() - started)
