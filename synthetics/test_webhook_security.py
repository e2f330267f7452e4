"""The payment-provider webhook must reject unsigned, forged and (where time is signed) stale deliveries."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from synthetics import reasons
from synthetics.config import ProbeConfig
from synthetics.delivery import deliver, provider_of
from synthetics.failures import LegFailed
from synthetics.http import ProbeClient, ProbeResponse
from synthetics.plugin import LegRecord

STALE_SECONDS = 3600  # an hour old: far outside any provider's 300 s tolerance


def _refuse_acceptance(reason: str) -> Callable[[int], None]:
    """Status before body: a 2xx is the critical failure the moment its status line arrives,
    whatever the body then does (undecodable, 2 MB, trickled, cut)."""

    def judge(status: int) -> None:
        if 200 <= status < 300:
            raise LegFailed(reason, f"HTTP {status}: webhook without a valid, current signature accepted",
                            severity="critical")

    return judge


def _judge_rejection(response: ProbeResponse) -> LegFailed | None:
    """``None`` when the API answered 400 ``invalid_signature``; otherwise the failure to raise."""
    status = response.status
    if status != 400:
        return LegFailed(reasons.http_status(status), f"expected 400 invalid_signature, got {status}")
    try:
        body = response.json()
    except LegFailed:
        body = None
    if isinstance(body, dict) and body.get("error") == "invalid_signature":
        return None
    return LegFailed(reasons.WRONG_REJECTION, "400 without error=invalid_signature")


@pytest.mark.prod_safe
def test_webhook_security(
    probe_http: ProbeClient, probe_config: ProbeConfig, leg_record: LegRecord
) -> None:
    provider = provider_of(probe_config)
    now = time.time()
    plan = probe_config.test_plan_id_pro or "plan_probe"
    unsigned = deliver(probe_http, probe_config, provider.probe_event(now), "none",
                       on_status=_refuse_acceptance(reasons.UNSIGNED_ACCEPTED))
    forged = deliver(probe_http, probe_config, provider.upgrade_event(str(uuid.uuid4()), plan, now), "forged",
                     on_status=_refuse_acceptance(reasons.FORGED_ACCEPTED))
    leg_record.note("unsigned_status", unsigned.status)
    leg_record.note("forged_status", forged.status)
    failures = [f for f in (_judge_rejection(unsigned), _judge_rejection(forged)) if f is not None]
    if provider.signs_time and not probe_config.webhook_secret:
        leg_record.note("stale_check", "skipped: no webhook secret to sign a stale delivery with")
    elif provider.signs_time and probe_config.webhook_secret:
        # (c) correctly signed, an hour old, for a team that does not exist: any 4xx is right.
        old = now - STALE_SECONDS
        stale = deliver(probe_http, probe_config, provider.upgrade_event(str(uuid.uuid4()), plan, old), "valid",
                        secret=probe_config.webhook_secret, at=int(old),
                        on_status=_refuse_acceptance(reasons.STALE_ACCEPTED))
        leg_record.note("stale_status", stale.status)
        if not 400 <= stale.status < 500:
            failures.append(LegFailed(reasons.http_status(stale.status),
                                      f"a stale delivery got {stale.status}, not 4xx"))
    if failures:
        raise failures[0]
