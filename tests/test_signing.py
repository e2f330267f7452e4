"""Every signature the prober makes, verified by each provider's official library (SPEC section 14),
and the sandbox's own verifiers held to the same libraries: a scheme detail we get wrong fails a
test whose verifier we did not write.

razorpay: the ``razorpay`` SDK's ``verify_webhook_signature``; stripe: ``stripe.Webhook.construct_event``;
standard: ``standardwebhooks.Webhook(secret).verify``.
"""

from __future__ import annotations

import base64
import json
import random
import string
import time
import uuid
from collections.abc import Callable

import pytest
import razorpay
import standardwebhooks
import stripe
from razorpay.errors import SignatureVerificationError

from sandbox import schemes
from synthetics.providers import PROVIDERS, Event
from synthetics.providers.base import forged

B64 = string.ascii_letters + string.digits + "+/"
rng = random.Random(20261201)


def _secret(provider: str) -> str:
    """A secret using every base64 character (and, where it is free text, a few more)."""
    if provider == "standard":
        raw = bytes(rng.randrange(256) for _ in range(rng.choice((24, 32, 33))))
        return "whsec_" + base64.b64encode(raw).decode()
    return "whsec_" + "".join(rng.sample(B64, len(B64))) + "=_-"


def _official(provider: str) -> Callable[[str, Event, dict[str, str]], bool]:
    """Does the provider's own library accept this delivery (now, its default tolerance)?"""
    def razorpay_ok(secret: str, event: Event, headers: dict[str, str]) -> bool:
        client = razorpay.Client(auth=("rzp_test_key", "rzp_test_secret"))
        try:
            return bool(client.utility.verify_webhook_signature(
                event.body.decode(), headers.get("X-Razorpay-Signature", ""), secret))
        except SignatureVerificationError:
            return False

    def stripe_ok(secret: str, event: Event, headers: dict[str, str]) -> bool:
        try:
            stripe.Webhook.construct_event(event.body, headers.get("Stripe-Signature", ""), secret, tolerance=300)
            return True
        except (stripe.SignatureVerificationError, ValueError):
            return False

    def standard_ok(secret: str, event: Event, headers: dict[str, str]) -> bool:
        try:
            standardwebhooks.Webhook(secret).verify(event.body, headers)
            return True
        except standardwebhooks.WebhookVerificationError:
            return False

    return {"razorpay": razorpay_ok, "stripe": stripe_ok, "standard": standard_ok}[provider]


def _headers(provider: str, secret: str, event: Event, at: int) -> dict[str, str]:
    p = PROVIDERS[provider]
    return {**p.delivery_headers(event, at), **p.signature_headers(secret, event, at)}


def _bodies(provider: str) -> list[Event]:
    """Real events, and non-ASCII and awkward bodies under real ids."""
    p = PROVIDERS[provider]
    now = time.time()
    events = [p.upgrade_event(str(uuid.uuid4()), f"plan_{i}", now) for i in range(15)]
    events += [p.cancel_event(str(uuid.uuid4()), "plan_x", now), p.probe_event(now)]
    odd = ['{"note":"naïve café ✓ 日本語 💳"}', '{"a":"\\u0000\\n\\r"}', '{"s":"  two  spaces  "}', '{"x":"' + "z" * 5000 + '"}']
    events += [Event(text.encode(), events[0].event_id) for text in odd]
    return events


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_every_signature_verifies_with_the_official_library(provider: str) -> None:
    verify = _official(provider)
    checked = 0
    for _ in range(4):
        secret = _secret(provider)
        for event in _bodies(provider):
            at = int(time.time()) - rng.randrange(0, 240)  # within every tolerance
            assert verify(secret, event, _headers(provider, secret, event, at)), (provider, event.body[:40])
            checked += 1
    assert checked == 4 * 21


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_the_official_library_refuses_a_tampered_body_a_wrong_key_and_a_forgery(provider: str) -> None:
    verify = _official(provider)
    p = PROVIDERS[provider]
    secret = _secret(provider)
    event = p.upgrade_event(str(uuid.uuid4()), "plan_test_pro", time.time())
    at = int(time.time())
    headers = _headers(provider, secret, event, at)
    tampered = Event(event.body.replace(b"plan_test_pro", b"plan_test_prx"), event.event_id)
    assert tampered.body != event.body
    assert not verify(secret, tampered, headers)
    assert not verify(_secret(provider), event, headers)
    assert not verify(secret, event, {**p.delivery_headers(event, at), **forged(p, event, at)})
    assert not verify(secret, event, p.delivery_headers(event, at))  # unsigned


@pytest.mark.parametrize("provider", ["stripe", "standard"])
def test_an_hour_old_signature_is_refused_by_the_official_library(provider: str) -> None:
    secret = _secret(provider)
    event = PROVIDERS[provider].upgrade_event(str(uuid.uuid4()), "plan", time.time() - 3600)
    assert not _official(provider)(secret, event, _headers(provider, secret, event, int(time.time()) - 3600))


def test_a_retry_is_the_same_bytes_and_id_re_signed_where_time_is_signed() -> None:
    for provider, p in PROVIDERS.items():
        secret = _secret(provider)
        event = p.upgrade_event(str(uuid.uuid4()), "plan", time.time())
        first, retry = _headers(provider, secret, event, 1_800_000_000), _headers(provider, secret, event, 1_800_000_060)
        assert (first == retry) is (not p.signs_time), provider


def test_events_have_each_schemes_shape() -> None:
    team = str(uuid.uuid4())
    razor = json.loads(PROVIDERS["razorpay"].upgrade_event(team, "plan_x", time.time()).body)
    assert razor["event"] == "subscription.charged" and razor["contains"] == ["subscription", "payment"]
    assert abs(razor["created_at"] - time.time()) < 5
    sub, pay = razor["payload"]["subscription"]["entity"], razor["payload"]["payment"]["entity"]
    assert (sub["plan_id"], sub["status"], sub["notes"]) == ("plan_x", "active", {"team_id": team, "synthetic": "true"})
    assert (pay["amount"], pay["currency"], pay["status"]) == (100, "INR", "captured")
    cancel = json.loads(PROVIDERS["razorpay"].cancel_event(team, "plan_x", time.time()).body)
    assert cancel["event"] == "subscription.cancelled" and "payment" not in cancel["payload"]
    assert cancel["payload"]["subscription"]["entity"]["status"] == "cancelled"

    paid_event = PROVIDERS["stripe"].upgrade_event(team, "price_x", time.time())
    paid = json.loads(paid_event.body)
    assert (paid["type"], paid["object"], paid["livemode"], paid["id"]) == ("invoice.paid", "event", False,
                                                                          paid_event.event_id)
    invoice = paid["data"]["object"]
    assert invoice["metadata"] == {"team_id": team, "synthetic": "true"} and invoice["status"] == "paid"
    assert invoice["lines"]["data"][0]["price"] == {"id": "price_x", "object": "price"}
    deleted = json.loads(PROVIDERS["stripe"].cancel_event(team, "price_x", time.time()).body)
    assert deleted["type"] == "customer.subscription.deleted"
    assert (deleted["data"]["object"]["status"], deleted["data"]["object"]["items"]["data"][0]["price"]["id"]) == (
        "canceled", "price_x")

    std = json.loads(PROVIDERS["standard"].upgrade_event(team, "plan_x", time.time()).body)
    assert std["type"] == "subscription.charged" and std["timestamp"].endswith("Z")
    assert std["data"]["team_id"] == team and std["data"]["plan_id"] == "plan_x" and std["data"]["synthetic"] is True
    assert json.loads(PROVIDERS["standard"].cancel_event(team, "plan_x", time.time()).body)["type"] == \
        "subscription.cancelled"


KEY_FORMATS = {"razorpay": r"[0-9a-f]{64}", "stripe": r"whsec_[0-9a-f]{64}", "standard": r"whsec_[A-Za-z0-9+/]{43}="}
SIGNATURE_FORMATS = {"X-Razorpay-Signature": r"[0-9a-f]{64}", "Stripe-Signature": r"t=\d+,v1=[0-9a-f]{64}",
                     "webhook-signature": r"v1,[A-Za-z0-9+/]{43}="}


def test_forged_deliveries_have_the_schemes_format_and_fail_the_real_secret() -> None:
    """What webhook_security (b) sends: the scheme's headers in the scheme's format under a random key of the
    secret's own format, so only the signature check (not a format check) can refuse it."""
    import re

    for provider, p in PROVIDERS.items():
        key = p.forged_key()
        assert re.fullmatch(KEY_FORMATS[provider], key), (provider, key)
        if provider == "standard":
            assert len(base64.b64decode(key.removeprefix("whsec_"), validate=True)) == 32
        assert key != p.forged_key()  # random every time
        event = p.upgrade_event(str(uuid.uuid4()), "plan", time.time())
        at = int(time.time())
        headers = forged(p, event, at)
        secret = _secret(provider)  # (a fresh one per call)
        real = p.signature_headers(secret, event, at)
        assert headers.keys() == real.keys()
        signature = next(h for h in headers if h in SIGNATURE_FORMATS)
        assert re.fullmatch(SIGNATURE_FORMATS[signature], headers[signature]), (provider, headers[signature])
        assert headers[signature] != real[signature]
        delivered = {**p.delivery_headers(event, at), **headers}
        assert schemes.verify(provider, secret, delivered, event.body, at).signature == "invalid"
        assert schemes.verify(provider, secret, {**p.delivery_headers(event, at), **real}, event.body,
                              at).signature == "valid"  # the same event, signed with the secret, passes


# ---- the sandbox's verifiers, held to the official libraries ------------------------------------

def _cases(provider: str) -> list[tuple[str, Event, dict[str, str]]]:
    p = PROVIDERS[provider]
    cases = []
    for _ in range(6):
        secret = _secret(provider)
        event = p.upgrade_event(str(uuid.uuid4()), "plan", time.time())
        now = int(time.time())
        good = _headers(provider, secret, event, now)
        cases += [
            (secret, event, good),
            (secret, Event(event.body + b" ", event.event_id), good),
            (_secret(provider), event, good),
            (secret, event, {**p.delivery_headers(event, now), **forged(p, event, now)}),
            (secret, event, p.delivery_headers(event, now)),
            (secret, event, {k: v[:-2] for k, v in good.items()}),
            (secret, event, {k: v.upper() for k, v in good.items()}),
        ]
        if p.signs_time:
            for skew in (-3600, -301, -200, 200, 301, 3600):
                cases.append((secret, event, _headers(provider, secret, event, now + skew)))
    return cases


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_the_sandbox_accepts_what_the_official_library_accepts_and_refuses_the_rest(provider: str) -> None:
    official = _official(provider)
    agreed = 0
    for secret, event, headers in _cases(provider):
        verdict = schemes.verify(provider, secret, headers, event.body, time.time())
        sandbox_accepts = verdict.signature == "valid" and verdict.fresh
        library_accepts = official(secret, event, headers)
        if provider == "razorpay" and verdict.signature == "valid":
            library_accepts = library_accepts and verdict.fresh  # the SDK signs no time; the sandbox adds created_at
        assert sandbox_accepts is library_accepts, (provider, headers, event.body[:30])
        agreed += 1
    assert agreed >= 6 * 7
