"""Stripe: ``Stripe-Signature: t=<unix>,v1=hex(HMAC-SHA256(secret, "<t>.<body>"))``, the key being the
whole ``whsec_…`` string; the event id is the body's ``id``; a 300 s tolerance on ``t``
(stripe-python's ``_webhook.py`` is the whole scheme in under 100 lines)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets

from synthetics.providers.base import Event


def _event(kind: str, obj: dict[str, object], now: float) -> Event:
    event_id = f"evt_{secrets.token_hex(12)}"
    body = {"id": event_id, "object": "event", "type": kind, "created": int(now), "livemode": False,
            "data": {"object": obj}}
    return Event(json.dumps(body, separators=(",", ":")).encode(), event_id)


def _metadata(team_id: str) -> dict[str, str]:
    return {"team_id": team_id, "synthetic": "true"}


class Stripe:
    name = "stripe"
    default_path = "/stripe/webhook"
    signs_time = True
    signature_header = "Stripe-Signature"  # scrubbed from every output by its name (runner.signals.redact)
    secret_variable = "PAYMENT_PROBE_WEBHOOK_SECRET"

    def new_subscription_id(self) -> str:
        return f"sub_{secrets.token_hex(12)}"

    def upgrade_event(self, team_id: str, plan_id: str, now: float, subscription_id: str | None = None) -> Event:
        # Today's shape names the subscription under parent.subscription_details; versions before
        # 2025-03-31 had it as the invoice's subscription / subscription_details: both are carried.
        subscription = subscription_id or self.new_subscription_id()
        return _event("invoice.paid", {
            "id": f"in_{secrets.token_hex(12)}", "object": "invoice", "status": "paid",
            "parent": {"type": "subscription_details", "subscription_details": {
                "subscription": subscription, "metadata": _metadata(team_id)}},
            "subscription": subscription, "subscription_details": {"metadata": _metadata(team_id)},
            "metadata": _metadata(team_id),
            "lines": {"object": "list", "data": [
                {"object": "line_item", "price": {"id": plan_id, "object": "price"}}]},
        }, now)

    def cancel_event(self, team_id: str, plan_id: str, now: float, subscription_id: str | None = None) -> Event:
        return _event("customer.subscription.deleted", {
            "id": subscription_id or self.new_subscription_id(), "object": "subscription", "status": "canceled",
            "metadata": _metadata(team_id),
            "items": {"object": "list", "data": [{"object": "subscription_item",
                                                  "price": {"id": plan_id, "object": "price"}}]},
        }, now)

    def probe_event(self, now: float) -> Event:
        return _event("invoice.paid", {"object": "invoice", "metadata": {"synthetic": "payment-probe-security-leg"}},
                      now)

    def forged_key(self) -> str:
        return "whsec_" + secrets.token_hex(32)

    def delivery_headers(self, event: Event, at: int) -> dict[str, str]:
        return {}  # the id is in the body, the time in the signature

    def signature_headers(self, key: str, event: Event, at: int) -> dict[str, str]:
        signed = f"{at}.".encode() + event.body
        return {"Stripe-Signature": f"t={at},v1={hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()}"}


STRIPE = Stripe()
