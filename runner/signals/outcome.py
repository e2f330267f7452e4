"""One leg's outcome (SPEC section 1): what every signal is cut from.

``runner.signals.rules`` builds each one, once, from the leg's reports; nothing patches it after.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from runner.timefmt import utc_iso
from synthetics.config import DEFAULT_LOCATION

Result = Literal["pass", "degraded", "fail"]
Severity = Literal["info", "warning", "error", "critical"]
Scalar = str | int | float | bool

# user_properties keys the makereport hook adds to a failed or skipped report.
REASON_KEY = "probe.reason"
SEVERITY_KEY = "probe.severity"
DETAIL_KEY = "probe.detail"
TRACE_KEY = "probe.trace_id"

REASON_LIMIT = 64
"""A reason is a token dashboards group by, never free text: longer is cut (SPEC section 10)."""


@dataclass(frozen=True)
class Outcome:
    """What one leg's run meant. Every signal (metric, audit row, event, log line) is cut from it."""

    leg: str  # the registered leg name (test_<leg>)
    result: Result  # pass / degraded / fail
    severity: Severity  # info / warning / error / critical
    reason: str  # short machine-readable cause: ok, slow, http_status:503, ...
    latency_seconds: float | None  # the leg's own network time; None when it got no response
    run_id: str  # shared by every leg of one run
    timestamp: float  # UTC epoch seconds when the outcome was decided
    environment: str | None = None  # PAYMENT_PROBE_ENVIRONMENT (prod, staging, ...)
    detail: str = ""  # one human-readable line, redacted
    metadata: Mapping[str, Scalar] = field(default_factory=dict)  # leg-recorded detail
    phases: Mapping[str, float] = field(default_factory=dict)  # network time by phase (SPEC 2)
    maintenance: bool = False  # decided while a maintenance window was open (SPEC 12)
    attempts: int = 1  # how many times the leg ran in this run (the runner confirms a failure, SPEC 15)
    recovered_from: str | None = None  # the first attempt's reason, when a later attempt did not fail
    location: str = DEFAULT_LOCATION  # PAYMENT_PROBE_LOCATION of the prober that decided it (SPEC 15)
    trace_id: str | None = None  # the leg span's trace (SPEC 16): from a page to the failing request
    id: str = field(default_factory=lambda: str(uuid.uuid4()))  # audit row key (dedup on replay)

    @property
    def timestamp_iso(self) -> str:
        return utc_iso(self.timestamp)

    def summary(self) -> dict[str, Any]:
        """The five fields `run --once --json` and `--probe-json` print, in that order."""
        return {
            "leg": self.leg,
            "result": self.result,
            "severity": self.severity,
            "reason": self.reason,
            "latency_seconds": self.latency_seconds,
        }

    def record(self) -> dict[str, Any]:
        """``--probe-json``'s row: the five fields, then where, how many attempts, and the trace."""
        return {**self.summary(), "location": self.location, "attempts": self.attempts,
                "recovered_from": self.recovered_from, "trace_id": self.trace_id}


class PhaseReport(Protocol):
    """The part of pytest's ``TestReport`` the rules read (so tests can feed plain objects)."""

    @property
    def when(self) -> str: ...

    @property
    def outcome(self) -> str: ...

    longrepr: Any
    user_properties: list[tuple[str, Any]]

    @property
    def failed(self) -> bool: ...

    @property
    def skipped(self) -> bool: ...
