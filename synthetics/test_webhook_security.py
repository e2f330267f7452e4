"""The payment-provider webhook must reject unsigned and forged payloads, every time."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from synthetics import signing
from synthetics.config import ProbeConfig
from synthetics.failures import LegFailed
from synthetics.http import ProbeClient, ProbeResponse
from synthetics.plugin import LegRecord


def _refuse_acceptance(reason: str) -> Callable[[int], None]:
    """Status before body: a 2xx is the critical failure the moment its status line arrives,
    whatever the body then does (undecodable, 2 MB, trickled, cut)."""

    def judge(status: int) -> None:
        if 200 <= status < 300:
            raise LegFailed(reason, f"HTTP {status}: webhook without a valid signature accepted",
                            severity="critical")

    return judge


def _judge_rejection(response: ProbeResponse, accepted_reason: str) -> LegFailed | None:
    """``None`` when the API answered 400 ``invalid_signature``; otherwise the failure to raise."""
    status = response.status
    if 200 <= status < 300:
        return LegFailed(
            accepted_reason, f"HTTP {status}: webhook without a valid signature accepted",
            severity="critical",
        )
    if status != 400:
        return LegFailed(f"http_status:{status}", f"expected 400 invalid_signature, got {status}")
    try:
        body = response.json()
    except LegFailed:
        body = None
    if isinstance(body, dict) and body.get("error") == "invalid_signature":
        return None
    return LegFailed("wrong_rejection", "400 without error=invalid_signature")


@pytest.mark.prod_safe
def test_webhook_security(
    probe_http: ProbeClient, probe_config: ProbeConfig, leg_record: LegRecord
) -> None:
    path = probe_config.webhook_path
    unsigned = probe_http.request(
        "POST", path, body=signing.UNSIGNED_PROBE_BODY,
        headers={"X-Razorpay-Event-Id": signing.event_id()},
        on_status=_refuse_acceptance("unsigned_accepted"),
    )
    forged_body = signing.charged_event(str(uuid.uuid4()), probe_config.test_plan_id_pro or "plan_probe")
    forged = probe_http.request(
        "POST", path, body=forged_body,
        headers={
            "X-Razorpay-Signature": signing.forged_signature(forged_body),
            "X-Razorpay-Event-Id": signing.event_id(),
        },
        on_status=_refuse_acceptance("forged_accepted"),
    )
    leg_record.note("unsigned_status", unsigned.status)
    leg_record.note("forged_status", forged.status)
    failures = [
        f for f in (
            _judge_rejection(unsigned, "unsigned_accepted"),
            _judge_rejection(forged, "forged_accepted"),
        ) if f is not None
    ]
    if failures:
        # An accepted payload is a money-and-security incident: it outranks a wrong error code.
        raise next((f for f in failures if f.severity == "critical"), failures[0])
