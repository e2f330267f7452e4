"""Razorpay, Stripe and Standard Webhooks against the real sandbox (SPEC section 14): every leg passes
when healthy; each new fault fails exactly its leg with the exact reason and severity; the old
webhook faults fail as before in every scheme; the replay leg always reaps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import LEGS, Probe, probe_env, query
from support.processes import cli, pytest_cli
from support.providers import PATHS, PROVIDERS, speak


def _cohort(probe: Probe) -> list[tuple[object, ...]]:
    return query(probe.database_url, "SELECT id FROM teams WHERE is_test_cohort")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_leg_passes_against_a_healthy_api(probe: Probe, provider: str) -> None:
    outcomes = probe.run(**speak(probe, provider))
    assert {leg: (o.result, o.reason) for leg, o in outcomes.items()} == dict.fromkeys(LEGS, ("pass", "ok"))
    assert outcomes["webhook_replay"].metadata["tier_after_replay"] == "hobby"
    assert _cohort(probe) == []
    posted = [r for r in probe.sandbox.requests if r["path"] == PATHS[provider]]
    # security: unsigned + forged (+ stale where time is signed); upgrade: 1; replay: charge, cancel, retry
    assert len(posted) == (3 if provider != "razorpay" else 2) + 1 + 3


# (fault, leg, result, severity, reason), the same in every scheme unless the scheme signs no time
FAULTS = [
    ("webhook_no_dedup", "webhook_replay", "fail", "critical", "replay_applied"),
    ("cancel_ignored", "webhook_replay", "fail", "error", "cancel_not_applied"),
    ("webhook_duplicate_409", "webhook_replay", "fail", "error", "replay_status:409"),
    ("webhook_accept_unsigned", "webhook_security", "fail", "critical", "unsigned_accepted"),
    ("webhook_accept_forged", "webhook_security", "fail", "critical", "forged_accepted"),
    ("webhook_wrong_rejection", "webhook_security", "fail", "error", "wrong_rejection"),
    ("webhook_500", "webhook_security", "fail", "error", "http_status:500"),
    ("upgrade_no_flip", "webhook_replay", "fail", "error", "tier_not_flipped"),
    ("upgrade_flip_then_500", "webhook_replay", "fail", "error", "webhook_status:500"),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("fault", "leg", "result", "severity", "reason"), FAULTS, ids=[f[0] for f in FAULTS])
def test_each_fault_fails_exactly_its_leg(probe: Probe, provider: str, fault: str, leg: str, result: str,
                                          severity: str, reason: str) -> None:
    outcomes = probe.run(fault, legs="webhook_security or webhook_replay", **speak(probe, provider))
    assert (outcomes[leg].result, outcomes[leg].severity, outcomes[leg].reason) == (result, severity, reason)
    other = "webhook_security" if leg == "webhook_replay" else "webhook_replay"
    if fault not in ("webhook_500", "upgrade_flip_then_500", "upgrade_no_flip"):
        assert (outcomes[other].result, outcomes[other].reason) == ("pass", "ok")
    assert _cohort(probe) == []  # reaped on every path


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_replay_window_left_open_is_critical_where_time_is_signed(probe: Probe, provider: str) -> None:
    outcome = probe.run("webhook_accept_stale", legs="webhook_security", **speak(probe, provider))["webhook_security"]
    if provider == "razorpay":  # no signed time: nothing stale to send
        assert (outcome.result, outcome.reason) == ("pass", "ok")
        return
    assert (outcome.result, outcome.severity, outcome.reason) == ("fail", "critical", "stale_accepted")
    assert outcome.metadata["unsigned_status"] == 400 and outcome.metadata["forged_status"] == 400


def test_the_replay_leg_degrades_without_its_configuration(probe: Probe) -> None:
    outcome = probe.run(legs="webhook_replay", PAYMENT_PROBE_PROVIDER="stripe")["webhook_replay"]
    assert (outcome.result, outcome.reason) == ("degraded", "config_missing:PAYMENT_PROBE_WEBHOOK_SECRET")


@pytest.mark.parametrize("provider", ["stripe", "standard"])
def test_the_runner_and_plain_pytest_speak_the_provider(probe: Probe, provider: str, tmp_path: Path) -> None:
    extra = speak(probe, provider)
    env = probe_env(probe.sandbox, probe.database_url, tmp_path, **extra)
    env.pop("RAZORPAY_TEST_WEBHOOK_SECRET")
    once = cli("run", "--once", "--json", env=env, timeout=180)
    assert once.returncode == 0, once.stderr[-2000:]
    assert {o["leg"]: o["result"] for o in json.loads(once.stdout)} == dict.fromkeys(LEGS, "pass")
    probe.sandbox.faults.replace(["webhook_no_dedup"])
    plain = pytest_cli("-m", "upgrade", f"--probe-json={tmp_path / 'o.json'}", env=env)
    assert plain.returncode == 1, plain.stdout[-2000:]
    judged = {o["leg"]: (o["result"], o["severity"], o["reason"])
              for o in json.loads((tmp_path / "o.json").read_text())}
    assert judged == {"upgrade_webhook_e2e": ("pass", "info", "ok"),
                      "webhook_replay": ("fail", "critical", "replay_applied")}
    assert _cohort(probe) == []
