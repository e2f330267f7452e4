"""The straight line from report to signals: the ledger decides attempts and outcomes from plain
reports, the rules build each ``Outcome`` once, and the controller hands that same object to every
sink — never a patched copy (issue 28)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from runner.legrun import LegRunner
from runner.signals import outcome as outcome_module
from runner.signals.controller import SignalsPlugin
from runner.signals.ledger import AttemptEnded, Ledger, OutcomeDecided
from runner.signals.outcome import DETAIL_KEY, REASON_KEY, SEVERITY_KEY, TRACE_KEY, Outcome
from runner.signals.redact import Redactor
from runner.signals.rules import Judging
from runner.signals.sink import MemorySink
from synthetics.config import ProbeConfig
from synthetics.leg_report import LATENCY_KEY

from conftest import Probe
from support.processes import wait_for


class Report:
    """The part of pytest's TestReport the ledger reads."""

    def __init__(self, nodeid: str, when: str, outcome: str, properties: list[tuple[str, Any]] | None = None,
                 longrepr: Any = None) -> None:
        self.nodeid, self.when, self.outcome = nodeid, when, outcome
        self.user_properties = properties or []
        self.longrepr = longrepr

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"

    @property
    def skipped(self) -> bool:
        return self.outcome == "skipped"


def _attempt(nodeid: str, call: str = "passed", props: list[tuple[str, Any]] | None = None) -> list[Report]:
    return [Report(nodeid, "setup", "passed"), Report(nodeid, "call", call, props), Report(nodeid, "teardown", "passed")]


NODE = "synthetics/test_billing_state.py::test_billing_state"
FAILED_500 = [(REASON_KEY, "http_status:500"), (SEVERITY_KEY, "error"), (DETAIL_KEY, "HTTP 500 for CANARY-SECRET-1")]


def test_the_ledger_ends_attempts_and_decides_once_per_leg() -> None:
    config = ProbeConfig(location="eu-west", environment="drill")
    ledger = Ledger(Judging(run_id="r-1", config=config, maintenance=True, redactor=Redactor(["CANARY-SECRET-1"]),
                            clock=lambda: 1_700_000_000.0))
    events: list[Any] = []
    assert ledger.attempt_number(NODE) == 1
    for report in _attempt(NODE, "rerun", FAILED_500):  # the confirmation retries the first attempt
        events += ledger.receive(report)
    assert ledger.attempt_number(NODE) == 2
    for report in _attempt(NODE, "passed", [(LATENCY_KEY, 0.25), (TRACE_KEY, "ab" * 16)]):
        events += ledger.receive(report)
    for report in _attempt("synthetics/test_x.py::test_not_a_leg", "failed"):  # no leg: no event
        events += ledger.receive(report)
    assert [type(e) for e in events] == [AttemptEnded, OutcomeDecided]
    first, decided = events[0].attempt, events[1].outcome
    assert (first.result, first.reason, first.attempts, first.detail) == ("fail", "http_status:500", 1,
                                                                         "HTTP 500 for [REDACTED]")
    assert (decided.leg, decided.result, decided.reason, decided.attempts, decided.recovered_from) == (
        "billing_state", "pass", "ok", 2, "http_status:500")
    # Everything the run knows is on the outcome at birth: nothing patches it after.
    assert (decided.run_id, decided.location, decided.environment, decided.maintenance, decided.timestamp,
            decided.latency_seconds, decided.trace_id) == ("r-1", "eu-west", "drill", True, 1_700_000_000.0, 0.25,
                                                           "ab" * 16)
    assert ledger.outcomes == [decided] and ledger.outcomes[0] is decided
    # At the end nothing more is owed for a leg that was decided; a selected leg never run is.
    owed = ledger.finish(expected=("billing_state", "invoices_reachable"), stopped=False)
    assert [(o.outcome.leg, o.outcome.reason) for o in owed] == [("invoices_reachable", "probe_error:NotCollected")]
    assert [o.leg for o in ledger.outcomes] == ["billing_state", "invoices_reachable"]


def test_an_interrupted_leg_is_decided_at_the_end_and_a_stopped_session_owes_no_missing_leg() -> None:
    ledger = Ledger(Judging(run_id="r-2"))
    assert ledger.receive(Report(NODE, "setup", "passed")) == []
    assert ledger.receive(Report(NODE, "call", "failed", FAILED_500)) == []  # no teardown: SIGTERM mid-leg
    owed = ledger.finish(expected=("billing_state", "checkout_reachable"), stopped=True)
    assert [(o.outcome.leg, o.outcome.result, o.outcome.reason) for o in owed] == [
        ("billing_state", "fail", "http_status:500")]


@pytest.fixture
def constructions(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every ``Outcome`` made in this test, by leg (``dataclasses.replace`` makes one too)."""
    made: Counter[str] = Counter()
    original = Outcome.__init__

    def counting(self: Outcome, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made[self.leg] += 1

    monkeypatch.setattr(outcome_module.Outcome, "__init__", counting)
    return made


def test_one_outcome_is_built_per_leg_per_run_and_every_sink_gets_that_object(
        probe: Probe, constructions: Counter[str]) -> None:
    """A real run with a confirmed retry: billing_state's first attempt fails (counted, one Outcome),
    its retry passes (its outcome, one more); every other leg is built exactly once."""
    probe.sandbox.faults.replace(["billing_500"])

    def clear_after_the_first_attempt() -> None:
        wait_for(lambda: any(r["path"] == "/api/v1/billing" for r in probe.sandbox.requests), 60, "an attempt")
        probe.sandbox.faults.replace([])

    config = probe.config(PAYMENT_PROBE_CONFIRM_RETRIES="1", PAYMENT_PROBE_CONFIRM_DELAY_SECONDS="1")
    first, second = MemorySink("first"), MemorySink("second")
    runner = LegRunner(config, SignalsPlugin([first, second]), ["-k", "billing_state or invoices_reachable"],
                       quiet=True)
    clearer = threading.Thread(target=clear_after_the_first_attempt)
    clearer.start()
    report = runner.run(uuid.uuid4().hex[:12], time.time())
    clearer.join()
    assert dict(constructions) == {"billing_state": 2, "invoices_reachable": 1}
    by_leg = {o.leg: o for o in report.outcomes}
    assert (by_leg["billing_state"].attempts, by_leg["billing_state"].recovered_from) == (2, "http_status:500")
    # The very objects the rules built: each sink recorded them, and flushed them, unchanged.
    assert [id(o) for o in first.recorded] == [id(o) for o in second.recorded] == [id(o) for o in report.outcomes]
    assert [id(o) for o in first.flushed[0]] == [id(o) for o in report.outcomes]
    # The retried attempt reached every sink's attempt() as its own object, then the outcome.
    assert [(a.leg, a.result) for a in first.attempts] == [("billing_state", "fail"), ("billing_state", "pass"),
                                                          ("invoices_reachable", "pass")]
    assert first.attempts[1] is by_leg["billing_state"]
