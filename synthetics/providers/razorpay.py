"""Razorpay: ``X-Razorpay-Signature: hex(HMAC-SHA256(secret, body))``; the event id rides unsigned in
``X-Razorpay-Event-Id``; no signed time (the body's ``created_at`` is the API's replay window)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid

from synthetics.providers.base import Event


def _notes(team_id: str) -> dict[str, str]:
    return {"team_id": team_id, "synthetic": "true"}


def _event(body: dict[str, object]) -> Event:
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    return Event(json.dumps(body, separators=(",", ":")).encode(), event_id)


def _subscription(team_id: str, plan_id: str, status: str, subscription_id: str) -> dict[str, object]:
    return {"entity": {"id": subscription_id, "entity": "subscription", "plan_id": plan_id,
                       "status": status, "notes": _notes(team_id)}}


class Razorpay:
    name = "razorpay"
    default_path = "/razorpay/webhook"
    signs_time = False
    signature_header = "X-Razorpay-Signature"  # scrubbed from every output by its name (runner.signals.redact)
    secret_variable = "RAZORPAY_TEST_WEBHOOK_SECRET"

    def new_subscription_id(self) -> str:
        return f"sub_{secrets.token_hex(7)}"

    def upgrade_event(self, team_id: str, plan_id: str, now: float, subscription_id: str | None = None) -> Event:
        return _event({
            "entity": "event", "account_id": "acc_paymentprobe", "event": "subscription.charged",
            "contains": ["subscription", "payment"], "created_at": int(now),
            "payload": {
                "subscription": _subscription(team_id, plan_id, "active",
                                              subscription_id or self.new_subscription_id()),
                "payment": {"entity": {"id": f"pay_{secrets.token_hex(7)}", "entity": "payment", "amount": 100,
                                       "currency": "INR", "status": "captured", "notes": _notes(team_id)}},
            },
        })

    def cancel_event(self, team_id: str, plan_id: str, now: float, subscription_id: str | None = None) -> Event:
        return _event({
            "entity": "event", "account_id": "acc_paymentprobe", "event": "subscription.cancelled",
            "contains": ["subscription"], "created_at": int(now),
            "payload": {"subscription": _subscription(team_id, plan_id, "cancelled",
                                                     subscription_id or self.new_subscription_id())},
        })

    def probe_event(self, now: float) -> Event:
        return _event({"event": "subscription.charged", "payload": {"synthetic": "payment-probe-security-leg"}})

    def forged_key(self) -> str:
        return secrets.token_hex(32)

    def delivery_headers(self, event: Event, at: int) -> dict[str, str]:
        return {"X-Razorpay-Event-Id": event.event_id}

    def signature_headers(self, key: str, event: Event, at: int) -> dict[str, str]:
        return {"X-Razorpay-Signature": hmac.new(key.encode(), event.body, hashlib.sha256).hexdigest()}


RAZORPAY = Razorpay()
