"""provider_roundtrip (SPEC 17): a round trip the payment provider itself starts, in Stripe's TEST mode.

The self-signed legs prove the handler; this proves the pipe. A test customer with the test card and a
subscription on the test price make Stripe deliver ``invoice.paid`` with its own signature, to the
endpoint it has registered: the tier must flip in the database. Cancelling must bring it back. When
the tier does not flip, Stripe's own event tells a delivery the billing API refused (``delivery_rejected``,
critical: the secret, the URL, a proxy or the handler is wrong, and every real payment meets the same)
from one it acknowledged and did not apply. The customer is always deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synthetics import reasons
from synthetics.config import ProbeConfig
from synthetics.failures import LegFailed
from synthetics.provider_health import Provider

SYNTHETIC = "synthetic"  # metadata[payment_probe]: what the sweep may delete, and billing dashboards exclude


class StripeTest(Provider):
    """Stripe's API with the TEST key (``provider_health.Provider``: the one-deadline client, the provider's
    own trouble degraded)."""

    def __init__(self, config: ProbeConfig, on_phases: Any) -> None:
        assert config.provider_test_key
        super().__init__(config, on_phases, key=config.provider_test_key)

    def call(self, method: str, path: str, form: Mapping[str, str] | None = None,
             idempotency_key: str | None = None, query: Mapping[str, str | int] | None = None) -> tuple[int, Any]:
        return self.request(method, path, query=query, form=form, idempotency_key=idempotency_key)

    def create(self, path: str, form: Mapping[str, str], idempotency_key: str) -> dict[str, Any]:
        """A create the provider must accept; its refusal is ``provider_rejected:<error code>``."""
        status, answer = self.call("POST", path, form, idempotency_key)
        if not 200 <= status < 300 or not isinstance(answer, dict) or not answer.get("id"):
            error = answer.get("error") if isinstance(answer, dict) else None
            code = (error.get("code") or error.get("type")) if isinstance(error, dict) else f"http_status_{status}"
            message = error.get("message", "") if isinstance(error, dict) else ""
            raise LegFailed(reasons.provider_rejected(str(code)), f"POST {path}: {message}"[:300])
        return answer

    def invoice_paid_delivery(self, subscription_id: str, since: float) -> dict[str, Any] | None:
        """Stripe's own ``invoice.paid`` for the subscription's invoice, if it created one."""
        status, page = self.call("GET", "/v1/events", query={"type": "invoice.paid", "created[gte]": int(since) - 5,
                                                             "limit": 100})
        data = page.get("data") if isinstance(page, dict) and status == 200 else None
        for event in data if isinstance(data, list) else []:
            invoice = ((event or {}).get("data") or {}).get("object") or {}
            details = (invoice.get("parent") or {}).get("subscription_details") or {}
            if subscription_id in (details.get("subscription"), invoice.get("subscription")):
                return dict(event)
        return None


def is_live(key: str) -> bool:
    return key.startswith(("sk_live_", "rk_live_"))
