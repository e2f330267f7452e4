"""provider_roundtrip (SPEC 17): a round trip the payment provider itself starts, in Stripe's TEST mode.

The self-signed legs prove the handler; this proves the pipe. A test customer with the test card and a
subscription on the test price make Stripe deliver ``invoice.paid`` with its own signature, to the
endpoint it has registered: the tier must flip in the database. Cancelling must bring it back. When
the tier does not flip, Stripe's own event tells a delivery the billing API refused (``delivery_rejected``,
critical: the secret, the URL, a proxy or the handler is wrong, and every real payment meets the same)
from one it acknowledged and did not apply. The customer is always deleted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from synthetics import wire
from synthetics.config import ProbeConfig
from synthetics.failures import LegFailed, degrade
from synthetics.http import MAX_BODY_BYTES, USER_AGENT
from synthetics.provider_health import unavailable
from synthetics.tls import provider_context

SYNTHETIC = "synthetic"  # metadata[payment_probe]: what the sweep may delete, and billing dashboards exclude


class StripeTest:
    """Stripe's API with the TEST key, through the one-deadline client."""

    def __init__(self, config: ProbeConfig, on_phases: Any) -> None:
        assert config.provider_api_url and config.provider_test_key
        self.base = config.provider_api_url
        self.key = config.provider_test_key
        self.timeout = config.http_timeout_seconds
        self.context = provider_context(config.ca_bundle) if self.base.startswith("https://") else None
        self.on_phases = on_phases

    def call(self, method: str, path: str, form: Mapping[str, str] | None = None,
             idempotency_key: str | None = None, query: Mapping[str, str | int] | None = None) -> tuple[int, Any]:
        """The status and the parsed body; the provider's own trouble ends the leg degraded."""
        url = self.base + path + (f"?{urlencode(query)}" if query else "")
        body = urlencode(form).encode() if form is not None else None
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": "identity",
                   "X-Synthetic-Probe": "payment-probe"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            headers["Authorization"] = "Bearer " + self.key.reveal()
            response = wire.exchange(method, url, headers=headers, body=body, timeout=self.timeout,
                                     context=self.context, max_body=MAX_BODY_BYTES)
        except wire.WireError as exc:
            self.on_phases(exc.phases, exc.answered)
            degrade(unavailable(exc.kind), f"{method} {path}: {exc.detail}")
        finally:
            headers.clear()
        self.on_phases(response.phases, True)
        if response.status in (401, 403):
            degrade(f"provider_auth:{response.status}", f"{method} {path}: the provider refused the TEST key")
        if response.status == 429:
            degrade("provider_rate_limited", f"{method} {path}: HTTP 429")
        if response.status >= 500:
            degrade(unavailable(f"http_status_{response.status}"), f"{method} {path}")
        try:
            return response.status, json.loads(response.body)
        except (ValueError, RecursionError):
            degrade(unavailable("not_json"), f"{method} {path}: HTTP {response.status} body is not JSON")

    def create(self, path: str, form: Mapping[str, str], idempotency_key: str) -> dict[str, Any]:
        """A create the provider must accept; its refusal is ``provider_rejected:<error code>``."""
        status, answer = self.call("POST", path, form, idempotency_key)
        if not 200 <= status < 300 or not isinstance(answer, dict) or not answer.get("id"):
            error = answer.get("error") if isinstance(answer, dict) else None
            code = (error.get("code") or error.get("type")) if isinstance(error, dict) else f"http_status_{status}"
            message = error.get("message", "") if isinstance(error, dict) else ""
            raise LegFailed(f"provider_rejected:{str(code).replace(':', '_')}", f"POST {path}: {message}"[:300])
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
