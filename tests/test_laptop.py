"""The legs as a laptop or a CI gate runs them: plain `pytest` from the repository root."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sandbox.server import SandboxServer

from conftest import PLAN_ID, WEBHOOK_SECRET, ca_of, provider_env, query
from support.processes import pytest_cli

PROD_SAFE = ["test_checkout_reachable", "test_billing_state", "test_invoices_reachable", "test_webhook_security",
             "test_tls_certificate", "test_provider_webhook_health"]


def _junit(path: Path) -> dict[str, str]:
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        state = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                state = child.tag
        cases[case.get("name", "")] = state
    return cases


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_prod_safe_from_a_laptop_with_junit(sandbox: SandboxServer, tmp_path: Path, xdist: list[str]) -> None:
    junit, outcomes, log = tmp_path / "probe.xml", tmp_path / "outcomes.json", tmp_path / "outcomes.jsonl"
    proc = pytest_cli("-m", "prod_safe", "--base-url", sandbox.url, f"--junitxml={junit}",
                      f"--probe-json={outcomes}", f"--probe-log={log}", *xdist, env={
                          "PAYMENT_PROBE_SPOOL_DIR": str(tmp_path), "PAYMENT_PROBE_CA_BUNDLE": ca_of(sandbox),
                          **provider_env(sandbox)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _junit(junit) == dict.fromkeys(PROD_SAFE, "passed")  # one testcase per leg, named after it
    assert sorted(o["leg"] for o in json.loads(outcomes.read_text())) == sorted(t[5:] for t in PROD_SAFE)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(line["leg"] for line in lines) == sorted(t[5:] for t in PROD_SAFE)  # once each, controller only
    # Under plain pytest no JSON line reaches the terminal: they went to --probe-log.
    assert '"payment_probe.outcome"' not in proc.stdout + proc.stderr


def test_a_failing_leg_fails_the_gate(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.faults.replace(["checkout_500"])
    junit = tmp_path / "probe.xml"
    proc = pytest_cli("-m", "prod_safe", "--base-url", sandbox.url, f"--junitxml={junit}",
                      env={"PAYMENT_PROBE_SPOOL_DIR": str(tmp_path), "PAYMENT_PROBE_CA_BUNDLE": ca_of(sandbox)})
    assert proc.returncode == 1
    assert _junit(junit)["test_checkout_reachable"] == "failure"


def test_unconfigured_upgrade_leg_skips_not_fails(tmp_path: Path) -> None:
    log = tmp_path / "outcomes.jsonl"
    proc = pytest_cli("-m", "upgrade", f"--probe-log={log}", env={"PAYMENT_PROBE_SPOOL_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout
    assert "2 skipped" in proc.stdout
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert sorted((line["leg"], line["result"], line["reason"]) for line in lines) == [
        ("upgrade_webhook_e2e", "degraded", "config_missing:PAYMENT_PROBE_DATABASE_URL"),
        ("webhook_replay", "degraded", "config_missing:PAYMENT_PROBE_DATABASE_URL")]


def test_upgrade_leg_from_a_laptop_writes_audit_rows(sandbox: SandboxServer, database_url: str, tmp_path: Path) -> None:
    proc = pytest_cli("-m", "upgrade", "--base-url", sandbox.url, "--database-url", database_url, env={
        "RAZORPAY_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET, "PAYMENT_PROBE_TEST_PLAN_ID_PRO": PLAN_ID,
        "PAYMENT_PROBE_SPOOL_DIR": str(tmp_path), "PAYMENT_PROBE_ENVIRONMENT": "laptop",
        "PAYMENT_PROBE_CA_BUNDLE": ca_of(sandbox)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert query(database_url, "SELECT leg, result, environment FROM audit_log ORDER BY leg") == [
        ("upgrade_webhook_e2e", "pass", "laptop"), ("webhook_replay", "pass", "laptop")]
    assert query(database_url, "SELECT count(*) FROM teams") == [(0,)]


def test_bad_option_value_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    proc = pytest_cli("-m", "prod_safe", "--base-url", "staging.example.com",
                      env={"PAYMENT_PROBE_SPOOL_DIR": str(tmp_path)})
    assert proc.returncode == 4
    assert "--base-url: expected an absolute http:// or https:// URL, got 'staging.example.com'" in proc.stderr


def test_probe_json_carries_location_attempts_and_trace(sandbox: SandboxServer, database_url: str,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "o.json"
    proc = pytest_cli("-k", "billing_state", "--base-url", sandbox.url, f"--probe-json={out}", env={
        "PAYMENT_PROBE_CA_BUNDLE": ca_of(sandbox), "PAYMENT_PROBE_LOCATION": "laptop-1",
        "PAYMENT_PROBE_SPOOL_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-2000:]
    (row,) = json.loads(out.read_text())
    assert row == {"leg": "billing_state", "result": "pass", "severity": "info", "reason": "ok",
                   "latency_seconds": row["latency_seconds"], "location": "laptop-1", "attempts": 1,
                   "recovered_from": None, "trace_id": None}
