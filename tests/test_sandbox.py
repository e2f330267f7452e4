"""The sandbox pinned to SPEC.md on its own: raw HTTP and hand-made HMACs, none of the prober's code."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import time
import uuid

import pytest
import requests

from sandbox.server import SandboxServer

from conftest import PLAN_ID, WEBHOOK_SECRET, ca_of, free_port, query
from support.processes import cli, spawn, wait_for


def event(team: str, plan: str = PLAN_ID, created: float | None = None) -> bytes:
    notes = {"team_id": team, "synthetic": "true"}
    return json.dumps({
        "entity": "event", "event": "subscription.charged", "contains": ["subscription", "payment"],
        "created_at": int(created if created is not None else time.time()),
        "payload": {"subscription": {"entity": {"id": "sub_x", "plan_id": plan, "status": "active", "notes": notes}},
                    "payment": {"entity": {"id": "pay_x", "amount": 100, "currency": "INR", "notes": notes}}},
    }).encode()


def post(sandbox: SandboxServer, body: bytes, signature: str | None, event_id: str | None = None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Razorpay-Signature"] = signature
    headers["X-Razorpay-Event-Id"] = event_id or f"evt_{uuid.uuid4().hex[:10]}"
    return requests.post(f"{sandbox.url}/razorpay/webhook", data=body, headers=headers, timeout=5, verify=ca_of(sandbox))


def mac(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def team(database_url: str) -> str:
    team_id = str(uuid.uuid4())
    query(database_url, "INSERT INTO teams (id, name) VALUES (%s, 'sandbox-test')", (team_id,))
    return team_id


def tier(url: str, team_id: str) -> str:
    return str(query(url, "SELECT plan_tier FROM teams WHERE id = %s", (team_id,))[0][0])


@pytest.mark.parametrize("signature", [None, "", "0" * 64, "not-hex", "deadbeef"])
def test_missing_or_bad_signature_is_invalid_signature(sandbox: SandboxServer, team: str, database_url: str,
                                                       signature: str | None) -> None:
    resp = post(sandbox, event(team), signature)
    assert (resp.status_code, resp.json()) == (400, {"error": "invalid_signature"})
    assert tier(database_url, team) == "hobby"


def test_valid_signature_flips_the_tier(sandbox: SandboxServer, team: str, database_url: str) -> None:
    body = event(team)
    resp = post(sandbox, body, mac(body))
    assert resp.status_code == 200
    assert tier(database_url, team) == "pro"


def test_tampered_body_is_rejected(sandbox: SandboxServer, team: str, database_url: str) -> None:
    body = event(team)
    resp = post(sandbox, body.replace(b'"amount": 100', b'"amount": 999'), mac(body))
    assert resp.status_code == 400 and tier(database_url, team) == "hobby"


def test_other_plans_and_stale_events_do_not_flip(sandbox: SandboxServer, team: str, database_url: str) -> None:
    other = event(team, plan="plan_live_pro")
    assert post(sandbox, other, mac(other)).json() == {"status": "ignored"}
    stale = event(team, created=time.time() - 600)
    resp = post(sandbox, stale, mac(stale))
    assert (resp.status_code, resp.json()) == (400, {"error": "stale_event"})
    assert tier(database_url, team) == "hobby"


def test_redelivery_is_deduplicated_on_event_id(sandbox: SandboxServer, team: str, database_url: str) -> None:
    body = event(team)
    assert post(sandbox, body, mac(body), "evt_same").json() == {"status": "applied"}
    query(database_url, "UPDATE teams SET plan_tier = 'hobby' WHERE id = %s", (team,))
    assert post(sandbox, body, mac(body), "evt_same").json() == {"status": "duplicate"}
    assert tier(database_url, team) == "hobby"


def test_faults_are_replaced_live(sandbox: SandboxServer) -> None:
    url = f"{sandbox.url}/_sandbox/faults"
    assert requests.post(url, json={"faults": ["billing_500", "checkout_402"]}, timeout=5, verify=ca_of(sandbox)).json() == {
        "faults": ["billing_500", "checkout_402"]}
    assert requests.get(f"{sandbox.url}/api/v1/billing", timeout=5, verify=ca_of(sandbox)).status_code == 500
    assert requests.post(url, json={"faults": []}, timeout=5, verify=ca_of(sandbox)).json() == {"faults": []}
    assert requests.get(f"{sandbox.url}/api/v1/billing", timeout=5, verify=ca_of(sandbox)).status_code == 200
    bad = requests.post(url, json={"faults": ["billing_on_fire"]}, timeout=5, verify=ca_of(sandbox))
    assert bad.status_code == 400 and bad.json()["error"] == "bad_fault"
    assert requests.get(url, timeout=5, verify=ca_of(sandbox)).json() == {"faults": []}


def test_sandbox_command(database_url: str) -> None:
    port = free_port()
    proc = spawn("sandbox", "--port", str(port), "--database-url", database_url, "--fault", "invoices_404", env={})
    try:
        wait_for(lambda: _ok(f"http://127.0.0.1:{port}/healthz"), 30, "the sandbox")
        assert requests.get(f"http://127.0.0.1:{port}/_sandbox/faults", timeout=5).json() == {"faults": ["invoices_404"]}
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/billing/invoices", timeout=5).status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    bad = cli("sandbox", "--database-url", database_url, "--fault", "nope", env={})
    assert bad.returncode == 2 and "unknown fault 'nope'" in bad.stderr


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False
