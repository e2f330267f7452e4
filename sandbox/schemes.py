"""The sandbox's own verifiers for the three webhook schemes (SPEC section 14), written from the
providers' documentation, never from the prober's code: a reference that shared the prober's signer
would agree with its bugs. The project's tests check these against each provider's official library.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TOLERANCE_SECONDS = 300
PROVIDERS = ("razorpay", "stripe", "standard")
DEFAULT_PATHS = {"razorpay": "/razorpay/webhook", "stripe": "/stripe/webhook", "standard": "/webhooks"}


@dataclass(frozen=True)
class Verdict:
    """``signature``: ``valid``, ``missing`` or ``invalid``; ``fresh``: within the tolerance (always
    true where the scheme signs no time); ``event_id``: what deduplication keys on."""

    signature: str
    fresh: bool = True
    event_id: str = ""


@dataclass(frozen=True)
class Change:
    """What an event asks for: ``upgrade`` or ``cancel`` a team on a plan (None: not ours)."""

    action: str
    team_id: str
    plan_id: str
    subscription: str = ""  # the provider's subscription id: a cancellation applies to the one it names


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def verify(provider: str, secret: str, headers: Mapping[str, str], body: bytes, now: float) -> Verdict:
    if provider == "razorpay":
        return _razorpay(secret, headers, body, now)
    if provider == "stripe":
        return _stripe(secret, headers, body, now)
    return _standard(secret, headers, body, now)


def _razorpay(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> Verdict:
    given = headers.get("X-Razorpay-Signature")
    if not given:
        return Verdict("missing")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not _equal(expected, given):
        return Verdict("invalid")
    try:  # no signed time: the body's created_at is the replay window
        fresh = abs(now - int(json.loads(body)["created_at"])) <= TOLERANCE_SECONDS
    except (ValueError, KeyError, TypeError):
        fresh = False
    return Verdict("valid", fresh, headers.get("X-Razorpay-Event-Id", ""))


def _stripe(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> Verdict:
    header = headers.get("Stripe-Signature")
    if not header:
        return Verdict("missing")
    stamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            stamp = value
        elif key == "v1":
            signatures.append(value)
    if stamp is None or not stamp.isdigit() or not signatures:
        return Verdict("invalid")
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not any(_equal(expected, s) for s in signatures):
        return Verdict("invalid")
    try:
        event_id = str(json.loads(body)["id"])
    except (ValueError, KeyError, TypeError):
        event_id = ""
    # Stripe refuses only the old: a timestamp ahead of the clock is not a replay (stripe-python).
    return Verdict("valid", now - int(stamp) <= TOLERANCE_SECONDS, event_id)


def _standard(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> Verdict:
    msg_id, stamp, given = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not given:
        return Verdict("missing")
    if not msg_id or not stamp or not stamp.isdigit():
        return Verdict("invalid")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return Verdict("invalid")
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    for candidate in given.split(" "):  # space-separated, each "v1,<base64>"
        version, _, signature = candidate.partition(",")
        if version == "v1" and _equal(expected, signature):
            return Verdict("valid", abs(now - int(stamp)) <= TOLERANCE_SECONDS, msg_id)
    return Verdict("invalid")


def change_of(provider: str, event: Any) -> Change | None:
    """The team, plan, subscription and action an event carries, or None for anything else."""
    try:
        if provider == "razorpay":
            sub = event["payload"]["subscription"]["entity"]
            action = {"subscription.charged": "upgrade", "subscription.cancelled": "cancel"}[event["event"]]
            return Change(action, str(uuid.UUID(sub["notes"]["team_id"])), sub["plan_id"], str(sub.get("id", "")))
        if provider == "stripe":
            obj = event["data"]["object"]
            if event["type"] == "invoice.paid":
                # Today's shape first (parent.subscription_details), then the pre-2025-03-31 fields.
                details = (obj.get("parent") or {}).get("subscription_details") or {}
                metadata = details.get("metadata") or (obj.get("subscription_details") or {}).get("metadata") \
                    or obj["metadata"]
                subscription = details.get("subscription") or obj.get("subscription") or ""
                return Change("upgrade", str(uuid.UUID(metadata["team_id"])),
                              obj["lines"]["data"][0]["price"]["id"], str(subscription))
            if event["type"] == "customer.subscription.deleted":
                return Change("cancel", str(uuid.UUID(obj["metadata"]["team_id"])),
                              obj["items"]["data"][0]["price"]["id"], str(obj.get("id", "")))
            return None
        data = event["data"]
        action = {"subscription.charged": "upgrade", "subscription.cancelled": "cancel"}[event["type"]]
        return Change(action, str(uuid.UUID(data["team_id"])), data["plan_id"], str(data.get("subscription_id", "")))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None
