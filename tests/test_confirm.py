"""Failures confirmed inside the run (SPEC 15), through pytest-rerunfailures: every attempt counted,
the outcome fail only when every attempt failed, no retry past the slot, none for a degraded leg,
none under plain pytest unless asked."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

from prometheus_client import CollectorRegistry

from runner.legrun import LegRunner
from runner.signals.controller import SignalsPlugin
from runner.signals.metrics import MetricsSink, ProbeMetrics
from runner.signals.sink import MemorySink

from conftest import LEGS, Probe, probe_env, query
from support.processes import pytest_cli, wait_for


def _run(probe: Probe, legs: str, deadline_in: float = 600.0, **extra: str) -> tuple[dict, ProbeMetrics, float]:  # type: ignore[type-arg]
    config = probe.config(PAYMENT_PROBE_CONFIRM_RETRIES="2", PAYMENT_PROBE_CONFIRM_DELAY_SECONDS="1.5", **extra)
    metrics = ProbeMetrics(CollectorRegistry())
    metrics.prime()
    sink = MemorySink()
    runner = LegRunner(config, SignalsPlugin([sink, MetricsSink(metrics)]), ["-k", legs], quiet=True)
    started = time.monotonic()
    # The slot ends deadline_in from now for every leg asked for (each of them on one interval).
    slot_start = time.time() + deadline_in - max(config.interval_of(leg) for leg in LEGS if leg in legs)
    report = runner.run(uuid.uuid4().hex[:12], slot_start)
    return {o.leg: o for o in report.outcomes}, metrics, time.monotonic() - started


def _attempts(metrics: ProbeMetrics, leg: str, result: str) -> float:
    return metrics.registry.get_sample_value("instant_payment_probe_attempts_total", {"leg": leg, "result": result}) or 0


def test_a_fault_that_clears_between_attempts_is_a_pass_that_remembers(probe: Probe) -> None:
    probe.sandbox.faults.replace(["billing_500"])

    def clear_after_the_first_attempt() -> None:
        wait_for(lambda: any(r["path"] == "/api/v1/billing" for r in probe.sandbox.requests), 60, "an attempt")
        probe.sandbox.faults.replace([])

    clearer = threading.Thread(target=clear_after_the_first_attempt)
    clearer.start()
    outcomes, metrics, _ = _run(probe, "billing_state")
    clearer.join()
    billing = outcomes["billing_state"]
    assert (billing.result, billing.reason, billing.attempts, billing.recovered_from) == ("pass", "ok", 2,
                                                                                         "http_status:500")
    assert (_attempts(metrics, "billing_state", "fail"), _attempts(metrics, "billing_state", "pass")) == (1, 1)
    assert metrics.registry.get_sample_value("instant_payment_probe_outcome_total",
                                             {"leg": "billing_state", "result": "pass"}) == 1


def test_a_leg_failing_every_attempt_is_a_fail_after_them_all(probe: Probe) -> None:
    probe.sandbox.faults.replace(["billing_500"])
    outcomes, metrics, took = _run(probe, "billing_state")
    billing = outcomes["billing_state"]
    print(f"billing_state failing every attempt (2 retries, 1.5 s apart): {took:.1f}s")
    assert (billing.result, billing.reason, billing.attempts, billing.recovered_from) == (
        "fail", "http_status:500", 3, None)
    assert _attempts(metrics, "billing_state", "fail") == 3
    assert [r["path"] for r in probe.sandbox.requests].count("/api/v1/billing") == 3
    assert took >= 3.0  # two delays of 1.5 s: the retries really waited


def test_each_attempt_of_the_upgrade_leg_mints_and_reaps_its_own_team(probe: Probe) -> None:
    probe.sandbox.faults.replace(["upgrade_no_flip"])
    outcomes, _, _ = _run(probe, "upgrade_webhook_e2e", PAYMENT_PROBE_UPGRADE_WAIT_SECONDS="0.3")
    upgrade = outcomes["upgrade_webhook_e2e"]
    assert (upgrade.result, upgrade.reason, upgrade.attempts) == ("fail", "tier_not_flipped", 3)
    posts = [r for r in probe.sandbox.requests if r["path"] == "/razorpay/webhook"]
    teams = {json.loads(r["body"])["payload"]["subscription"]["entity"]["notes"]["team_id"] for r in posts}
    assert len(teams) == 3  # a team per attempt
    assert query(probe.database_url, "SELECT count(*) FROM teams WHERE is_test_cohort") == [(0,)]


def test_no_retry_that_would_push_the_run_past_its_slot(probe: Probe) -> None:
    probe.sandbox.faults.replace(["billing_500"])
    outcomes, metrics, _ = _run(probe, "billing_state", deadline_in=5.0)  # a retry needs 1.5 s + the 8 s leg timeout
    assert (outcomes["billing_state"].result, outcomes["billing_state"].attempts) == ("fail", 1)
    assert _attempts(metrics, "billing_state", "fail") == 1


def test_a_degraded_leg_is_not_retried(probe: Probe) -> None:
    probe.sandbox.faults.replace(["billing_429"])
    outcomes, metrics, _ = _run(probe, "billing_state")
    assert (outcomes["billing_state"].result, outcomes["billing_state"].attempts) == ("degraded", 1)
    assert _attempts(metrics, "billing_state", "degraded") == 1


def test_plain_pytest_retries_nothing_unless_asked(probe: Probe, tmp_path: Path) -> None:
    probe.sandbox.faults.replace(["billing_500"])
    env = probe_env(probe.sandbox, probe.database_url, tmp_path)
    env.pop("PAYMENT_PROBE_ENABLED")
    plain = pytest_cli("-k", "billing_state", f"--probe-log={tmp_path / 'a.jsonl'}", env=env)
    assert plain.returncode == 1
    (line,) = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert (line["result"], line["attempts"]) == ("fail", 1)
    asked = pytest_cli("-k", "billing_state", "--reruns", "1", f"--probe-log={tmp_path / 'b.jsonl'}", env=env)
    assert asked.returncode == 1
    (line,) = [json.loads(x) for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert (line["result"], line["attempts"]) == ("fail", 2)
