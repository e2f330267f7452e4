"""Razorpay-shaped ``subscription.charged`` events and their webhook signature (SPEC section 5).

The body is serialized exactly once and those bytes are both signed and posted: re-encoding
after signing (key order, spacing) would break the HMAC the API verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid

from synthetics.secret import Secret


def charged_event(team_id: str, plan_id: str, *, now: float | None = None) -> bytes:
    """The serialized event for ``team_id`` on ``plan_id``, stamped with the current time."""
    notes = {"team_id": team_id, "synthetic": "true"}
    event = {
        "entity": "event",
        "account_id": "acc_paymentprobe",
        "event": "subscription.charged",
        "contains": ["subscription", "payment"],
        "created_at": int(time.time() if now is None else now),
        "payload": {
            "subscription": {
                "entity": {
                    "id": f"sub_{secrets.token_hex(7)}",
                    "entity": "subscription",
                    "plan_id": plan_id,
                    "status": "active",
                    "notes": notes,
                }
            },
            "payment": {
                "entity": {
                    "id": f"pay_{secrets.token_hex(7)}",
                    "entity": "payment",
                    "amount": 100,
                    "currency": "INR",
                    "status": "captured",
                    "notes": notes,
                }
            },
        },
    }
    return json.dumps(event, separators=(",", ":")).encode()


def sign(secret: str | Secret, body: bytes) -> str:
    """``X-Razorpay-Signature``: lowercase hex HMAC-SHA256 of the raw body under the secret."""
    key = secret.reveal() if isinstance(secret, Secret) else secret
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def forged_signature(body: bytes) -> str:
    """A well-formed signature (64 hex chars) under a random key that no API can know."""
    return sign(secrets.token_hex(32), body)


def event_id() -> str:
    """A fresh ``X-Razorpay-Event-Id``: Razorpay deduplicates deliveries on it."""
    return f"evt_{uuid.uuid4().hex[:14]}"


UNSIGNED_PROBE_BODY = json.dumps(
    {"event": "subscription.charged", "payload": {"synthetic": "payment-probe-security-leg"}},
    separators=(",", ":"),
).encode()
