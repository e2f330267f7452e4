"""Signer parity with the official razorpay SDK, the API's own verifier scheme."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import razorpay
from razorpay.errors import SignatureVerificationError

from synthetics import signing

SECRET = "whsec_parity_1234"


@pytest.fixture
def client() -> razorpay.Client:
    return razorpay.Client(auth=("rzp_test_key", "rzp_test_secret"))


def test_signature_verifies_with_the_sdk(client: razorpay.Client) -> None:
    body = signing.charged_event(str(uuid.uuid4()), "plan_test_pro")
    signature = signing.sign(SECRET, body)
    assert client.utility.verify_webhook_signature(body.decode(), signature, SECRET) is True


def test_one_changed_byte_fails_in_the_sdk(client: razorpay.Client) -> None:
    body = signing.charged_event(str(uuid.uuid4()), "plan_test_pro")
    signature = signing.sign(SECRET, body)
    tampered = body.replace(b'"amount":100', b'"amount":101')
    assert tampered != body and len(tampered) == len(body)
    with pytest.raises(SignatureVerificationError):
        client.utility.verify_webhook_signature(tampered.decode(), signature, SECRET)


def test_forged_signature_is_well_formed_and_wrong(client: razorpay.Client) -> None:
    body = signing.charged_event(str(uuid.uuid4()), "plan_test_pro")
    forged = signing.forged_signature(body)
    assert len(forged) == 64 and all(c in "0123456789abcdef" for c in forged)
    with pytest.raises(SignatureVerificationError):
        client.utility.verify_webhook_signature(body.decode(), forged, SECRET)


def test_event_has_the_razorpay_shape_and_current_time() -> None:
    team = str(uuid.uuid4())
    event = json.loads(signing.charged_event(team, "plan_x"))
    assert event["event"] == "subscription.charged" and event["entity"] == "event"
    assert event["contains"] == ["subscription", "payment"]
    assert abs(event["created_at"] - time.time()) < 5
    sub = event["payload"]["subscription"]["entity"]
    pay = event["payload"]["payment"]["entity"]
    assert sub["plan_id"] == "plan_x" and sub["status"] == "active" and sub["id"].startswith("sub_")
    assert sub["notes"] == {"team_id": team, "synthetic": "true"} == pay["notes"]
    assert (pay["amount"], pay["currency"], pay["status"]) == (100, "INR", "captured")


def test_unsigned_probe_body_is_json_but_not_a_real_event() -> None:
    body = json.loads(signing.UNSIGNED_PROBE_BODY)
    assert body["payload"] == {"synthetic": "payment-probe-security-leg"}
