"""Standard Webhooks v1: ``webhook-id`` (``msg_…``, signed), ``webhook-timestamp`` (signed, 300 s
tolerance) and ``webhook-signature: v1,<base64(HMAC-SHA256(base64decode(secret after "whsec_"),
"<id>.<timestamp>.<body>"))>``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime

from synthetics.providers.base import Event


def _event(kind: str, data: dict[str, object], now: float) -> Event:
    body = {"type": kind, "timestamp": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
            "data": data}
    return Event(json.dumps(body, separators=(",", ":")).encode(), f"msg_{secrets.token_hex(12)}")


def key_bytes(secret: str) -> bytes:
    """The HMAC key: the base64 after ``whsec_``. ``ValueError`` for a secret that is not base64."""
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64 after whsec_") from None


class Standard:
    name = "standard"
    default_path = "/webhooks"
    signs_time = True
    signature_header = "webhook-signature"  # scrubbed from every output by its name (runner.signals.redact)
    secret_variable = "PAYMENT_PROBE_WEBHOOK_SECRET"

    def new_subscription_id(self) -> str:
        return f"sub_{secrets.token_hex(12)}"

    def upgrade_event(self, team_id: str, plan_id: str, now: float, subscription_id: str | None = None) -> Event:
        return _event("subscription.charged", {"team_id": team_id, "plan_id": plan_id,
                                               "subscription_id": subscription_id or self.new_subscription_id(),
                                               "synthetic": True}, now)

    def cancel_event(self, team_id: str, plan_id: str, now: float, subscription_id: str | None = None) -> Event:
        return _event("subscription.cancelled", {"team_id": team_id, "plan_id": plan_id,
                                                 "subscription_id": subscription_id or self.new_subscription_id(),
                                                 "synthetic": True}, now)

    def probe_event(self, now: float) -> Event:
        return _event("subscription.charged", {"synthetic": "payment-probe-security-leg"}, now)

    def forged_key(self) -> str:
        return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()

    def signature_headers(self, key: str, event: Event, at: int) -> dict[str, str]:
        signed = f"{event.event_id}.{at}.".encode() + event.body
        digest = hmac.new(key_bytes(key), signed, hashlib.sha256).digest()
        return {"webhook-signature": "v1," + base64.b64encode(digest).decode()}

    def delivery_headers(self, event: Event, at: int) -> dict[str, str]:
        return {"webhook-id": event.event_id, "webhook-timestamp": str(at)}


STANDARD = Standard()
