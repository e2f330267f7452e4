"""The ledger: which report ends an attempt, which ends a leg, and what is owed at the session's end.

Pure bookkeeping, no pytest and no I/O (h11's "no side channels"): ``receive`` takes each leg's
phase reports as they arrive (from this process or an xdist worker) and answers what they decided —
an attempt the confirmation retries (``AttemptEnded``) or the leg's outcome (``OutcomeDecided``),
each built once by the rules. ``finish`` decides what the session still owes: a leg interrupted
before its teardown, a leg pytest never ran. The signals plugin turns these events into spans and
sink calls; a test can drive the ledger with plain objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from runner.signals import rules
from runner.signals.outcome import Outcome, PhaseReport
from synthetics.registry import Leg, leg_for_test


@dataclass(frozen=True)
class AttemptEnded:
    """An attempt the confirmation retries (pytest-rerunfailures' ``rerun``): counted, never an outcome."""

    attempt: Outcome


@dataclass(frozen=True)
class OutcomeDecided:
    """The leg's outcome for this run: exactly one per leg, final."""

    outcome: Outcome


Event = AttemptEnded | OutcomeDecided


class LegReport(PhaseReport, Protocol):
    """A phase report that says which test it belongs to (pytest's ``TestReport``)."""

    @property
    def nodeid(self) -> str: ...


def leg_of(nodeid: str) -> Leg | None:
    """``path::test_billing_state[param]`` → the ``billing_state`` leg; None for other tests."""
    return leg_for_test(nodeid.rsplit("::", 1)[-1].split("[", 1)[0])


class Ledger:
    """One session's reports, attempts and outcomes."""

    def __init__(self, judging: rules.Judging) -> None:
        self.judging = judging
        self.outcomes: list[Outcome] = []
        self._reports: dict[str, list[PhaseReport]] = {}
        self._attempts: dict[str, list[Outcome]] = {}  # a leg's retried attempts before its last
        self._collection_errors: list[str] = []

    def attempt_number(self, nodeid: str) -> int:
        """The number of the attempt starting now (1 for the first, 2 for the confirmation's retry...)."""
        return len(self._attempts.get(nodeid, [])) + 1

    def receive(self, report: LegReport) -> list[Event]:
        """A phase report. A teardown ends an attempt: retried if any of its phases was a ``rerun``."""
        if leg_of(report.nodeid) is None:
            return []
        reports = self._reports.setdefault(report.nodeid, [])
        reports.append(report)
        if report.when != "teardown":
            return []
        if any(r.outcome == "rerun" for r in reports):
            return [self._attempt_ended(report.nodeid)]
        decided = self._decide(report.nodeid)
        return [] if decided is None else [decided]

    def collection_failed(self, summary: str) -> None:
        """A module failed to import or collect: named by the legs that then never ran."""
        self._collection_errors.append(summary)

    def finish(self, *, expected: tuple[str, ...], stopped: bool) -> list[OutcomeDecided]:
        """What the session still owes: an outcome for every leg interrupted before its teardown, and —
        unless the session was stopped on purpose (SIGTERM: a leg not begun did not fail) — for every
        ``expected`` leg the configuration selects that never reported."""
        owed = [decided for nodeid in list(self._reports) if (decided := self._decide(nodeid)) is not None]
        if not stopped:
            decided_legs = {o.leg for o in self.outcomes}
            for name in expected:
                if name not in decided_legs and name in self.judging.config.legs:
                    owed.append(self._record(rules.not_collected(name, self.judging, self._collection_errors)))
        return owed

    def _attempt_ended(self, nodeid: str) -> AttemptEnded:
        leg = leg_of(nodeid)
        assert leg is not None  # only leg reports are kept
        earlier = self._attempts.setdefault(nodeid, [])
        attempt = rules.judge(leg, [rules.Retried(r) for r in self._reports.pop(nodeid)], self.judging,
                              earlier=earlier)
        earlier.append(attempt)
        return AttemptEnded(attempt)

    def _decide(self, nodeid: str) -> OutcomeDecided | None:
        reports = self._reports.pop(nodeid, None)
        if not reports:
            return None
        leg = leg_of(nodeid)
        assert leg is not None
        return self._record(rules.judge(leg, reports, self.judging, earlier=self._attempts.pop(nodeid, [])))

    def _record(self, outcome: Outcome) -> OutcomeDecided:
        self.outcomes.append(outcome)
        return OutcomeDecided(outcome)
