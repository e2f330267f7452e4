"""Every row of SPEC's status table, for each reachability leg, against the real sandbox."""

from __future__ import annotations

import json
import socket
import time

import pytest

from conftest import LEGS, Probe, legs_in_own_process, probe_env

REACHABILITY = {"checkout": "checkout_reachable", "billing": "billing_state", "invoices": "invoices_reachable"}

# (sandbox status, result, reason)
STATUS_TABLE = [
    (200, "pass", "ok"),
    (201, "pass", "ok"),
    (301, "fail", "redirect:301"),
    (302, "fail", "redirect:302"),
    (307, "fail", "redirect:307"),
    (402, "pass", "ok"),
    (409, "pass", "ok"),
    (400, "pass", "ok"),
    (422, "pass", "ok"),
    (404, "fail", "http_status:404"),
    (405, "fail", "http_status:405"),
    (401, "degraded", "http_status:401"),
    (403, "degraded", "http_status:403"),
    (429, "degraded", "http_status:429"),
    (500, "fail", "http_status:500"),
    (503, "fail", "http_status:503"),
    (504, "fail", "http_status:504"),
]


@pytest.mark.parametrize("endpoint", sorted(REACHABILITY))
@pytest.mark.parametrize(("status", "result", "reason"), STATUS_TABLE)
def test_status_classification(probe: Probe, endpoint: str, status: int, result: str, reason: str) -> None:
    leg = REACHABILITY[endpoint]
    outcomes = probe.run(f"{endpoint}_status_{status}", legs=f"test_{leg}")
    # The generic status fault answers a small JSON error object, so 2xx bodies are JSON objects.
    assert (outcomes[leg].result, outcomes[leg].reason) == (result, reason)
    assert list(outcomes) == [leg]


# The named faults of SPEC section 7, each against the leg it must move, and only that leg.
NAMED = [
    ("checkout_500", "checkout_reachable", "fail", "http_status:500"),
    ("checkout_502_json", "checkout_reachable", "pass", "ok"),
    ("checkout_502_html", "checkout_reachable", "fail", "http_status:502"),
    ("checkout_402", "checkout_reachable", "pass", "ok"),
    ("checkout_404", "checkout_reachable", "fail", "http_status:404"),
    ("billing_500", "billing_state", "fail", "http_status:500"),
    ("billing_html_200", "billing_state", "fail", "not_json"),
    ("billing_401", "billing_state", "degraded", "http_status:401"),
    ("billing_429", "billing_state", "degraded", "http_status:429"),
    ("billing_slow", "billing_state", "degraded", "slow"),
    ("billing_redirect", "billing_state", "fail", "redirect:302"),
    ("invoices_500", "invoices_reachable", "fail", "http_status:500"),
    ("invoices_404", "invoices_reachable", "fail", "http_status:404"),
    ("invoices_hang", "invoices_reachable", "fail", "timeout"),
    ("invoices_huge", "invoices_reachable", "fail", "body_too_large"),
    ("invoices_bad_utf8", "invoices_reachable", "fail", "not_json"),
    ("invoices_deep_json", "invoices_reachable", "fail", "not_json"),
    ("invoices_string_200", "invoices_reachable", "fail", "not_json"),
    ("webhook_accept_unsigned", "webhook_security", "fail", "unsigned_accepted"),
    ("webhook_accept_forged", "webhook_security", "fail", "forged_accepted"),
    ("webhook_wrong_rejection", "webhook_security", "fail", "wrong_rejection"),
    ("webhook_500", "webhook_security", "fail", "http_status:500"),
    ("upgrade_no_flip", "upgrade_webhook_e2e", "fail", "tier_not_flipped"),
    ("upgrade_flip_then_500", "upgrade_webhook_e2e", "fail", "webhook_status:500"),
    ("upgrade_slow_flip", "upgrade_webhook_e2e", "pass", "ok"),
]


@pytest.mark.parametrize(("fault", "leg", "result", "reason"), NAMED)
def test_named_fault_moves_exactly_its_leg(probe: Probe, fault: str, leg: str, result: str, reason: str) -> None:
    outcomes = probe.run(fault)
    assert len(outcomes) == len(LEGS)
    # An upgrade that never lands (or lands with a 500) breaks both money-path legs the same way.
    moved = {leg, "webhook_replay"} if fault in ("upgrade_no_flip", "upgrade_flip_then_500") else {leg}
    for name in moved:
        assert (outcomes[name].result, outcomes[name].reason) == (result, reason)
    others = {name: o.result for name, o in outcomes.items() if name not in moved}
    assert others == dict.fromkeys(others, "pass")


def test_all_legs_pass_against_a_healthy_sandbox(probe: Probe) -> None:
    outcomes = probe.run()
    assert {leg: (o.result, o.severity, o.reason) for leg, o in outcomes.items()} == {
        leg: ("pass", "info", "ok")
        for leg in ("checkout_reachable", "billing_state", "invoices_reachable", "tls_certificate",
                    "webhook_security", "upgrade_webhook_e2e", "webhook_replay")
    }
    assert all(o.latency_seconds is not None and 0 < o.latency_seconds < 5 for o in outcomes.values())


def test_slow_but_correct_is_degraded_with_latency(probe: Probe) -> None:
    outcome = probe.run("billing_delay_700", legs="test_billing_state", PAYMENT_PROBE_SLOW_SECONDS="0.5")["billing_state"]
    assert (outcome.result, outcome.severity, outcome.reason) == ("degraded", "warning", "slow")
    assert outcome.latency_seconds is not None and outcome.latency_seconds >= 0.7


def test_hang_ends_within_the_request_timeout(probe: Probe) -> None:
    started = time.monotonic()
    outcome = probe.run("invoices_hang", legs="test_invoices_reachable",
                        PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS="1")["invoices_reachable"]
    assert (outcome.result, outcome.reason, outcome.latency_seconds) == ("fail", "timeout", None)
    assert time.monotonic() - started < 8  # bounded by the request timeout, far under the leg's


def test_trickling_body_fails_on_the_deadline_not_the_leg_timeout(probe: Probe) -> None:
    outcome = probe.run("invoices_trickle", legs="test_invoices_reachable",
                        PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS="2")["invoices_reachable"]
    assert (outcome.result, outcome.reason) == ("fail", "timeout")
    # The one-deadline client's timeout names the exchange; pytest-timeout's (8 s here) would say "Timeout (>8.0s)".
    assert outcome.detail.startswith("GET /api/v1/billing/invoices: "), outcome.detail
    assert "Timeout (>" not in outcome.detail
    assert outcome.latency_seconds is not None and outcome.latency_seconds < 8.0  # ended before the leg timeout


@pytest.mark.parametrize(("fault", "reason"), [("invoices_huge", "body_too_large"), ("invoices_deep_json", "not_json")])
def test_a_huge_or_deep_body_costs_bounded_memory(probe: Probe, fault: str, reason: str) -> None:
    probe.sandbox.faults.replace([fault])
    measured = legs_in_own_process(probe_env(probe.sandbox, probe.database_url, probe.tmp_path),
                                   "test_invoices_reachable")
    assert measured["outcomes"] == {"invoices_reachable": ["fail", reason]}
    assert measured["grown_mb"] < 32  # the 1 MiB cap (and a parse of at most that), not the endless body


def test_connection_refused_is_a_fail_without_latency(probe: Probe) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{sock.getsockname()[1]}"
    outcomes = probe.run(legs="not upgrade_webhook_e2e", PAYMENT_PROBE_BASE_URL=dead)
    assert {o.reason for o in outcomes.values()} == {"connection_error"}
    assert {o.result for o in outcomes.values()} == {"fail"}
    assert all(o.latency_seconds is None for o in outcomes.values())


def test_missing_base_url_degrades_every_http_leg(probe: Probe) -> None:
    outcomes = probe.run(legs="not upgrade_webhook_e2e", PAYMENT_PROBE_BASE_URL="")
    assert {(o.result, o.reason) for o in outcomes.values()} == {
        ("degraded", "config_missing:PAYMENT_PROBE_BASE_URL")
    }


def test_probe_sends_its_identity_and_bearer_token(probe: Probe) -> None:
    probe.sandbox.settings.api_token = "tok_probe_account"
    outcomes = probe.run(legs="test_billing_state", PAYMENT_PROBE_API_TOKEN="tok_probe_account")
    assert outcomes["billing_state"].result == "pass"
    seen = [r for r in probe.sandbox.requests if r["path"] == "/api/v1/billing"][-1]["headers"]
    assert seen["User-Agent"].startswith("payment-probe/")
    assert seen["X-Synthetic-Probe"] == "payment-probe"
    assert seen["Authorization"] == "Bearer tok_probe_account"


def test_wrong_token_degrades_not_fails(probe: Probe) -> None:
    probe.sandbox.settings.api_token = "tok_expected"
    outcome = probe.run(legs="test_billing_state", PAYMENT_PROBE_API_TOKEN="tok_rotated")["billing_state"]
    assert (outcome.result, outcome.reason) == ("degraded", "http_status:401")


def test_checkout_posts_the_configured_plan(probe: Probe) -> None:
    probe.run(legs="test_checkout_reachable", PAYMENT_PROBE_CHECKOUT_PLAN_ID="team-annual")
    sent = [r for r in probe.sandbox.requests if r["path"] == "/api/v1/billing/checkout"][-1]
    assert sent["method"] == "POST"
    assert json.loads(sent["body"]) == {"plan_id": "team-annual", "synthetic": True}


def test_ipv6_loopback_base_url(probe: Probe, database_url: str) -> None:
    from sandbox.server import SandboxSettings, start

    try:
        v6 = start(SandboxSettings(database_url=database_url), host="::1")
    except OSError as exc:  # a kernel without IPv6
        pytest.skip(f"no IPv6 loopback here ({exc})")
    try:
        assert v6.url.startswith("http://[::1]:")
        outcomes = probe.run(legs="not upgrade_webhook_e2e and not webhook_replay and not tls_certificate", PAYMENT_PROBE_BASE_URL=v6.url)
    finally:
        v6.stop()
    assert {o.result for o in outcomes.values()} == {"pass"}
