"""``payment-probe gate`` (SPEC 19): the legs as a CI gate from any directory, with the verdict a
deploy pipeline needs, against the real sandbox. pytest-base-url is installed beside the legs in
this suite, so every case here also proves the two plugins share ``--base-url``."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sandbox.server import SandboxServer

from conftest import ca_of, provider_env
from support.processes import base_env

PROD_SAFE = {"checkout_reachable", "billing_state", "invoices_reachable", "webhook_security", "tls_certificate",
             "provider_webhook_health"}


def gate(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The gate as a CI job runs it: in the application's directory, not this repository."""
    return subprocess.run([sys.executable, "-m", "runner.cli", "gate", *args], env={**base_env(), **env},
                          capture_output=True, text=True, timeout=180, cwd=cwd)


@pytest.fixture
def gate_env(sandbox: SandboxServer, tmp_path: Path) -> dict[str, str]:
    # The application's repository: its own pytest.ini and conftest.py must not touch the gate.
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers -x --no-such-option\n")
    (tmp_path / "conftest.py").write_text("raise RuntimeError('the application conftest must not be imported')\n")
    return {"PAYMENT_PROBE_CA_BUNDLE": ca_of(sandbox), "PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS": "5",
            "PAYMENT_PROBE_SPOOL_DIR": str(tmp_path / "spool"), **provider_env(sandbox)}


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stderr.strip().splitlines()[-1]


def test_every_leg_passing_is_exit_0_with_junit_and_json(sandbox: SandboxServer, gate_env: dict[str, str],
                                                        tmp_path: Path) -> None:
    proc = gate("--base-url", sandbox.url, "--junitxml=out/junit.xml", "--probe-json=out/outcomes.json",
                env=gate_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _last_line(proc) == "payment-probe gate: passed: 6 of 6 leg(s) run passed"
    outcomes = json.loads((tmp_path / "out" / "outcomes.json").read_text())
    assert {o["leg"]: o["result"] for o in outcomes} == dict.fromkeys(PROD_SAFE, "pass")
    cases = {c.get("name") for c in ET.parse(tmp_path / "out" / "junit.xml").getroot().iter("testcase")}
    assert cases == {f"test_{leg}" for leg in PROD_SAFE}


def test_a_failing_leg_is_exit_1_and_the_last_line_names_it(sandbox: SandboxServer, gate_env: dict[str, str],
                                                            tmp_path: Path) -> None:
    sandbox.faults.replace(["checkout_500"])
    proc = gate("--base-url", sandbox.url, env=gate_env, cwd=tmp_path)
    assert proc.returncode == 1
    assert _last_line(proc) == "payment-probe gate: FAILED: checkout_reachable fail (error) http_status:500"


@pytest.mark.parametrize(("fault", "reason"), [("billing_401", "http_status:401"), ("billing_slow", "slow")])
def test_degraded_by_the_apis_answer_fails_unless_told(sandbox: SandboxServer, gate_env: dict[str, str],
                                                       tmp_path: Path, fault: str, reason: str) -> None:
    sandbox.faults.replace([fault])
    env = {**gate_env, "PAYMENT_PROBE_SLOW_SECONDS": "0.5"}  # the sandbox's slow answer (0.6 s) is over it
    proc = gate("--base-url", sandbox.url, "-k", "billing_state", env=env, cwd=tmp_path)
    assert proc.returncode == 1
    assert _last_line(proc) == ("payment-probe gate: FAILED on degraded (--fail-on fail would let it pass): "
                                f"billing_state degraded {reason}")
    allowed = gate("--base-url", sandbox.url, "-k", "billing_state", "--fail-on", "fail", env=env, cwd=tmp_path)
    assert allowed.returncode == 0
    assert _last_line(allowed) == "payment-probe gate: passed: 0 of 1 leg(s) run passed, 1 degraded"


def test_a_leg_it_was_given_no_configuration_for_does_not_fail_it_and_is_named(
        sandbox: SandboxServer, gate_env: dict[str, str], tmp_path: Path) -> None:
    proc = gate("--base-url", sandbox.url, "-m", "prod_safe or upgrade", env=gate_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert ("payment-probe gate: not run (no configuration for them): upgrade_webhook_e2e "
            "(config_missing:PAYMENT_PROBE_DATABASE_URL), webhook_replay (config_missing:PAYMENT_PROBE_DATABASE_URL)"
            ) in lines
    assert lines[-1] == "payment-probe gate: passed: 6 of 6 leg(s) run passed, 2 not run"


def test_no_base_url_is_exit_2_never_a_green_gate(gate_env: dict[str, str], tmp_path: Path) -> None:
    proc = gate(env=gate_env, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "payment-probe gate: PAYMENT_PROBE_BASE_URL: expected an absolute http:// or https:// URL (or --base-url): "
        "with no billing API to probe, every leg would be skipped and the gate would check nothing"]
    bad = gate("--base-url", "billing.example.com", env=gate_env, cwd=tmp_path)
    assert bad.returncode == 2
    assert _last_line(bad) == ("payment-probe gate: --base-url: expected an absolute http:// or https:// URL, got "
                               "'billing.example.com'")


def test_a_marker_that_selects_no_leg_is_exit_2(sandbox: SandboxServer, gate_env: dict[str, str],
                                                tmp_path: Path) -> None:
    proc = gate("--base-url", sandbox.url, "-m", "no_such_marker", env=gate_env, cwd=tmp_path)
    assert proc.returncode == 2
    assert _last_line(proc) == "payment-probe gate: no leg matches -m 'no_such_marker': nothing was checked"


def test_plain_pytest_pyargs_from_any_directory_beside_pytest_base_url(sandbox: SandboxServer,
                                                                      gate_env: dict[str, str],
                                                                      tmp_path: Path) -> None:
    import importlib.util

    assert importlib.util.find_spec("pytest_base_url") is not None  # the coexistence this proves
    (tmp_path / "pytest.ini").unlink()
    (tmp_path / "conftest.py").unlink()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "synthetics.plugin", "-p", "runner.signals.plugin",
                           "--pyargs", "synthetics", "-m", "prod_safe", "--base-url", sandbox.url,
                           "--probe-json=o.json", "-p", "no:cacheprovider"],
                          env={**base_env(), **gate_env}, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    outcomes = json.loads((tmp_path / "o.json").read_text())
    assert {o["leg"]: o["result"] for o in outcomes} == dict.fromkeys(PROD_SAFE, "pass")
