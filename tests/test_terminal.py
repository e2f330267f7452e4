"""The laptop and CI-gate run reads like pytest: one-line leg failures, an outcome table, JSON only where asked."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from synthetics.failures import one_line

BODY = """
import pytest
from synthetics.failures import LegFailed, degrade

def test_billing_state(leg_record):
    leg_record.add_phases({"processing": 0.05}, True)

def test_invoices_reachable():
    degrade("http_status:429", "the API refused or rate-limited the probe's own credentials")

def test_checkout_reachable():
    raise LegFailed("http_status:500", "POST /api/v1/billing/checkout")

def test_webhook_security():
    secret_local = "a local the traceback must not show"
    raise LegFailed("unsigned_accepted", "HTTP 200: webhook without a valid signature accepted", severity="critical")

def test_upgrade_webhook_e2e():
    tier_seen = {"tier": "hobby"}
    return tier_seen["missing"]
"""


@pytest.fixture(autouse=True)
def clean_env(clean_probe_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # FAILED lines are cut at the terminal width


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_legs=BODY)
    return pytester.runpytest_subprocess("-p", "synthetics.plugin", "-p", "runner.signals.plugin",
                                         "-p", "no:cacheprovider", "-rA", *args)


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_one_line_failures_and_the_outcome_table(pytester: pytest.Pytester, xdist: list[str]) -> None:
    result = _run(pytester, "-l", "--tb=long", *xdist)
    text = "\n".join(result.outlines)
    critical = one_line("webhook_security", "fail", "critical", "unsigned_accepted",
                        "HTTP 200: webhook without a valid signature accepted")
    assert f"FAILED test_legs.py::test_webhook_security - {critical}" in result.outlines
    assert ("FAILED test_legs.py::test_checkout_reachable - checkout_reachable fail (error): http_status:500"
            " — POST /api/v1/billing/checkout") in result.outlines
    assert "invoices_reachable degraded (warning): http_status:429 — the API refused" in text
    # A reason the leg knows needs no traceback: its locals never print, even with -l.
    assert "a local the traceback must not show" not in text
    # A real bug (probe_error) keeps its traceback, and -l still shows its locals.
    assert "tier_seen" in text and "KeyError" in text
    # The summary section, once (the xdist controller prints it, never a worker).
    assert text.count("payment-probe outcomes") == 1
    table = text[text.index("payment-probe outcomes"):]
    for row in ("ok    billing_state          pass      info", "WARN  invoices_reachable     degraded  warning",
                "FAIL  webhook_security       fail      critical", "probe_error:KeyError"):
        assert row in table, row
    assert "50.0 ms" in table
    # No JSON outcome line on the terminal under plain pytest.
    assert '"payment_probe.outcome"' not in text + "\n".join(result.errlines)


def test_the_gate_can_fail_on_degraded(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_legs="""
from synthetics.failures import degrade
def test_billing_state():
    degrade("http_status:401", "expired staging token")
def test_checkout_reachable():
    pass
""")
    base = ("-p", "synthetics.plugin", "-p", "runner.signals.plugin", "-p", "no:cacheprovider")
    assert pytester.runpytest_subprocess(*base).ret == 0
    assert pytester.runpytest_subprocess(*base, "--probe-fail-on=degraded").ret == 1
    assert pytester.runpytest_subprocess(*base, "--probe-fail-on=degraded", "-n", "2").ret == 1


def test_junit_carries_the_outcome_as_properties(pytester: pytest.Pytester) -> None:
    junit = pytester.path / "j.xml"
    _run(pytester, f"--junitxml={junit}")
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    def props(name: str) -> dict[str, str]:
        return {p.get("name", ""): p.get("value", "") for p in cases[name].iter("property")}
    assert {k: v for k, v in props("test_webhook_security").items() if k.startswith("probe.")} == {
        "probe.result": "fail", "probe.severity": "critical", "probe.reason": "unsigned_accepted"}
    assert props("test_invoices_reachable")["probe.result"] == "degraded"
    assert props("test_billing_state")["probe.reason"] == "ok"
    failure = cases["test_webhook_security"].find("failure")
    assert failure is not None and failure.get("message", "").startswith("webhook_security fail (critical)")
