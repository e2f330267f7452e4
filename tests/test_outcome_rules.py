"""The plugin's outcome rules, proven by running real pytest sessions (pytester)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runner.signals.rules import reason_from_skip

from conftest import query

PLUGINS = ("-p", "synthetics.plugin", "-p", "runner.signals.plugin")

HEADER = """
import time
import pytest
from synthetics.failures import LegFailed
"""


@pytest.fixture(autouse=True)
def clean_env(clean_probe_env: None) -> None:
    """Every session here sees only the variables its test sets."""


def run_session(pytester: pytest.Pytester, body: str, *args: str, subprocess: bool = False) -> tuple[
    dict[str, dict[str, Any]], list[dict[str, Any]], Any
]:
    pytester.makepyfile(test_legs=HEADER + body)
    out, log = pytester.path / "outcomes.json", pytester.path / "outcomes.jsonl"
    argv = [*PLUGINS, f"--probe-json={out}", f"--probe-log={log}", "-p", "no:cacheprovider", *args]
    result = pytester.runpytest_subprocess(*argv) if subprocess else pytester.runpytest_inprocess(*argv)
    outcomes = json.loads(out.read_text()) if out.exists() else []
    lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    # Under plain pytest the JSON lines never reach the terminal (they went to --probe-log).
    assert not [x for x in result.outlines + result.errlines if '"payment_probe.outcome"' in x]
    by_leg = {o["leg"]: o for o in outcomes}
    assert len(by_leg) == len(outcomes), "one outcome per leg"
    return by_leg, lines, result


def _pair(outcome: dict[str, Any]) -> tuple[str, str, str]:
    return outcome["result"], outcome["severity"], outcome["reason"]


CASES = {
    "setup_skip": (
        """
@pytest.fixture
def needs_config():
    pytest.skip("config_missing:PAYMENT_PROBE_BASE_URL")

def test_billing_state(needs_config):
    pass
""", ("degraded", "warning", "config_missing:PAYMENT_PROBE_BASE_URL")),
    "call_skip": (
        """
def test_billing_state():
    pytest.skip("http_status:429 rate limited")
""", ("degraded", "warning", "http_status:429")),
    "setup_error": (
        """
@pytest.fixture
def broken():
    return {}["missing"]

def test_billing_state(broken):
    pass
""", ("fail", "error", "probe_error:KeyError")),
    "call_leg_failed": (
        """
def test_billing_state():
    raise LegFailed("http_status:503", "upstream down")
""", ("fail", "error", "http_status:503")),
    "call_exception": (
        """
def test_billing_state():
    int("not a number")
""", ("fail", "error", "probe_error:ValueError")),
    "call_assert": (
        """
def test_billing_state():
    assert 1 == 2
""", ("fail", "error", "assertion_failed")),
    "teardown_only_failure": (
        """
@pytest.fixture
def reaper():
    yield
    raise LegFailed("reap_failed", "team left behind")

def test_billing_state(reaper):
    pass
""", ("fail", "error", "reap_failed")),
    "fail_beats_degraded": (
        """
@pytest.fixture
def reaper():
    yield
    raise RuntimeError("teardown broke")

def test_billing_state(reaper):
    pytest.skip("config_missing:X")
""", ("fail", "error", "probe_error:RuntimeError")),
    "critical": (
        """
def test_webhook_security():
    raise LegFailed("unsigned_accepted", "200 to an unsigned webhook", severity="critical")
""", ("fail", "critical", "unsigned_accepted")),
    "plain_pass": (
        """
def test_billing_state(leg_record):
    leg_record.add_phases({"processing": 0.25}, True)
""", ("pass", "info", "ok")),
    "slow_pass": (
        """
def test_billing_state(leg_record):
    leg_record.add_phases({"processing": 1.5}, True)
    leg_record.add_phases({"processing": 1.0}, True)
""", ("degraded", "warning", "slow")),
    "slow_checkout_within_its_own_budget": (
        """
def test_checkout_reachable(leg_record):
    leg_record.add_phases({"processing": 4.0}, True)
""", ("pass", "info", "ok")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_phase_outcome_rules(pytester: pytest.Pytester, case: str) -> None:
    body, expected = CASES[case]
    outcomes, lines, _ = run_session(pytester, body)
    (outcome,) = outcomes.values()
    assert _pair(outcome) == expected
    assert len(lines) == 1 and (lines[0]["result"], lines[0]["reason"]) == expected[::2]


def test_latency_is_the_leg_recorded_network_time(pytester: pytest.Pytester) -> None:
    outcomes, _, _ = run_session(pytester, """
def test_billing_state(leg_record):
    time.sleep(0.3)  # pytest's own time, not the leg's network time
    leg_record.add_phases({"processing": 0.125}, True)
""")
    assert outcomes["billing_state"]["latency_seconds"] == 0.125


def test_no_response_means_no_latency(pytester: pytest.Pytester) -> None:
    outcomes, _, _ = run_session(pytester, """
def test_billing_state():
    raise LegFailed("connection_error")
""")
    assert outcomes["billing_state"]["latency_seconds"] is None


def test_slow_override_applies_to_http_legs_only(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENT_PROBE_SLOW_SECONDS", "0.1")
    outcomes, _, _ = run_session(pytester, """
def test_billing_state(leg_record):
    leg_record.add_phases({"processing": 0.2}, True)

def test_upgrade_webhook_e2e(leg_record):
    leg_record.set_latency(0.2)
""")
    assert outcomes["billing_state"]["reason"] == "slow"
    assert outcomes["upgrade_webhook_e2e"]["reason"] == "ok"


def test_timeout_is_a_fail_named_timeout(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENT_PROBE_LEG_TIMEOUT_SECONDS", "0.5")
    outcomes, _, result = run_session(pytester, """
cleaned = []

@pytest.fixture
def finalizer():
    yield
    cleaned.append(True)
    print("FINALIZER RAN")

def test_invoices_reachable(finalizer):
    time.sleep(30)
""", "-s", subprocess=True)
    assert _pair(outcomes["invoices_reachable"]) == ("fail", "error", "timeout")
    assert "FINALIZER RAN" in result.stdout.str()  # the signal method lets teardown (the reap) run


def test_tests_that_are_not_legs_get_no_outcome(pytester: pytest.Pytester) -> None:
    outcomes, _, result = run_session(pytester, """
def test_helper_behaviour():
    pass

def test_billing_state():
    pass
""")
    assert list(outcomes) == ["billing_state"]
    result.assert_outcomes(passed=2)


def test_one_outcome_per_leg_under_xdist(pytester: pytest.Pytester) -> None:
    body = "\n".join(
        f"def test_{leg}(leg_record):\n    leg_record.add_phases({{'processing': 0.01}}, True)\n    time.sleep(0.2)\n"
        for leg in ("checkout_reachable", "billing_state", "invoices_reachable", "webhook_security",
                    "upgrade_webhook_e2e")
    )
    outcomes, lines, _ = run_session(pytester, body, "-n", "2", subprocess=True)
    assert sorted(outcomes) == sorted(
        ["checkout_reachable", "billing_state", "invoices_reachable", "webhook_security", "upgrade_webhook_e2e"]
    )
    assert {o["result"] for o in outcomes.values()} == {"pass"}
    assert len(lines) == 5  # emitted by the controller only, never again by a worker
    assert len({line["run_id"] for line in lines}) == 1


def test_xdist_carries_reasons_from_workers(pytester: pytest.Pytester) -> None:
    outcomes, _, _ = run_session(pytester, """
def test_billing_state():
    raise LegFailed("not_json", "html")

def test_webhook_security():
    raise LegFailed("forged_accepted", severity="critical")

def test_invoices_reachable():
    pytest.skip("http_status:403")
""", "-n", "2", subprocess=True)
    assert _pair(outcomes["billing_state"]) == ("fail", "error", "not_json")
    assert _pair(outcomes["webhook_security"]) == ("fail", "critical", "forged_accepted")
    assert _pair(outcomes["invoices_reachable"]) == ("degraded", "warning", "http_status:403")


def test_exception_in_the_upgrade_leg_still_reaps(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("PAYMENT_PROBE_DATABASE_URL", database_url)
    monkeypatch.setenv("RAZORPAY_TEST_WEBHOOK_SECRET", "whsec_x")
    monkeypatch.setenv("PAYMENT_PROBE_TEST_PLAN_ID_PRO", "plan_x")
    outcomes, _, _ = run_session(pytester, """
def test_upgrade_webhook_e2e(cohort_team):
    assert cohort_team.id
    raise KeyError("payload")
""")
    assert _pair(outcomes["upgrade_webhook_e2e"]) == ("fail", "error", "probe_error:KeyError")
    assert query(database_url, "SELECT count(*) FROM teams") == [(0,)]


@pytest.mark.parametrize(("message", "expected"), [
    ("config_missing:RAZORPAY_TEST_WEBHOOK_SECRET", ("config_missing:RAZORPAY_TEST_WEBHOOK_SECRET", "")),
    ("mint_failed database unreachable (OperationalError)", ("mint_failed", "database unreachable (OperationalError)")),
    ("Some human sentence", ("skipped", "Some human sentence")),
])
def test_skip_messages_become_reason_tokens(message: str, expected: tuple[str, str]) -> None:
    assert reason_from_skip(message) == expected


def test_a_leg_module_that_fails_to_import_still_ends_red(pytester: pytest.Pytester) -> None:
    from runner.signals.controller import SignalsPlugin
    from runner.signals.sink import MemorySink
    from synthetics.registry import LEGS

    pytester.makepyfile(
        test_good="def test_billing_state():\n    pass\n",
        test_broken="import json\nraise ImportError('a dependency of the webhook legs is gone')\n"
                    "def test_webhook_security():\n    pass\n",
    )
    sink = MemorySink()
    plugin = SignalsPlugin([sink], expected_legs=LEGS)
    pytester.runpytest_inprocess(*PLUGINS, "--continue-on-collection-errors", plugins=[plugin])
    by_leg = {o.leg: o for o in sink.recorded}
    # exactly one outcome per leg the session runs (razorpay's: every leg but Stripe's round trip), even
    # for legs that never ran
    assert set(by_leg) == set(LEGS) - {"provider_roundtrip"}
    assert (by_leg["billing_state"].result, by_leg["billing_state"].reason) == ("pass", "ok")
    for leg in set(LEGS) - {"billing_state", "provider_roundtrip"}:
        assert (by_leg[leg].result, by_leg[leg].reason) == ("fail", "probe_error:CollectionError")
    assert "a dependency of the webhook legs is gone" in by_leg["webhook_security"].detail


def test_the_reason_vocabulary_is_closed_to_exceptions_that_carry_a_reason_attribute() -> None:
    import ssl

    from runner.signals.rules import failure_details
    from synthetics.failures import LegFailed

    unicode_error = UnicodeEncodeError("latin-1", "€", 0, 1, "ordinal not in range(256)")
    ssl_error = ssl.SSLError(1, "[SSL] something")
    ssl_error.reason = "WRONG_VERSION_NUMBER"  # type: ignore[misc]
    odd = ValueError("x")
    odd.reason = "free text, not a token"  # type: ignore[attr-defined]
    assert failure_details(unicode_error)[0] == "probe_error:UnicodeEncodeError"
    assert failure_details(ssl_error)[0] == "probe_error:SSLError"
    assert failure_details(odd)[0] == "probe_error:ValueError"
    assert failure_details(LegFailed("unsigned_accepted", "d", severity="critical")) == (
        "unsigned_accepted", "critical", "d")


class _Report:
    def __init__(self, when: str, outcome: str, properties: list[tuple[str, Any]]) -> None:
        self.when, self.outcome, self.longrepr, self.user_properties = when, outcome, None, properties
        self.failed, self.skipped = outcome == "failed", outcome == "skipped"


def test_a_reason_is_capped_in_every_signal() -> None:
    from runner.signals.outcome import REASON_KEY
    from runner.signals.rules import Judging, judge
    from synthetics.registry import LEGS

    outcome = judge(LEGS["billing_state"], [_Report("call", "failed", [(REASON_KEY, "http_status:" + "5" * 300)])],
                    Judging(run_id="r"))
    assert outcome.reason == ("http_status:" + "5" * 300)[:64]
