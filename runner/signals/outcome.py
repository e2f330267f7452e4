"""One leg's outcome, and the rules that turn its setup/call/teardown reports into it (SPEC section 1).

The rules live here, once, as a pure function of the reports: the same leg gets the same
outcome whether it ran in the cluster, on a laptop or in a CI gate, serially or under xdist.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from runner.timefmt import utc_iso
from synthetics.config import DEFAULT_LOCATION
from synthetics.leg_report import DETAIL_LIMIT, DETAIL_PREFIX, LATENCY_KEY, PHASE_PREFIX

Result = Literal["pass", "degraded", "fail"]
Severity = Literal["info", "warning", "error", "critical"]
Scalar = str | int | float | bool

# user_properties keys the makereport hook adds to a failed or skipped report.
REASON_KEY = "probe.reason"
SEVERITY_KEY = "probe.severity"
DETAIL_KEY = "probe.detail"
TRACE_KEY = "probe.trace_id"

_TOKEN = re.compile(r"^[a-z][a-z0-9_]*(:[A-Za-z0-9_.\-]+)?$")
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

    when: str
    outcome: str
    longrepr: Any
    user_properties: list[tuple[str, Any]]

    @property
    def failed(self) -> bool: ...

    @property
    def skipped(self) -> bool: ...


def skip_message(report: PhaseReport) -> str:
    longrepr = report.longrepr
    is_skip_tuple = isinstance(longrepr, tuple) and len(longrepr) == 3
    message = str(longrepr[2]) if is_skip_tuple else str(longrepr or "")
    return message.removeprefix("Skipped: ").strip()


def reason_from_skip(message: str) -> tuple[str, str]:
    """``"config_missing:X more words"`` → (``config_missing:X``, ``more words``)."""
    token, _, rest = message.partition(" ")
    if _TOKEN.match(token):
        return token, rest.strip()
    return "skipped", message


def _properties(reports: Sequence[PhaseReport]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for report in reports:
        for key, value in report.user_properties:
            merged[key] = value
    return merged


def assemble(
    leg: str,
    reports: Sequence[PhaseReport],
    *,
    slow_threshold: float,
    run_id: str,
    environment: str | None,
    now: float | None = None,
) -> Outcome:
    """Fail beats degraded beats pass; the first failing phase names the reason."""
    props = _properties(reports)
    latency_raw = props.get(LATENCY_KEY)
    latency = float(latency_raw) if isinstance(latency_raw, int | float) else None
    metadata: dict[str, Scalar] = {
        key.removeprefix(DETAIL_PREFIX): value
        for key, value in props.items()
        if key.startswith(DETAIL_PREFIX) and isinstance(value, str | int | float | bool)
    }
    phases = {
        key.removeprefix(PHASE_PREFIX): float(value)
        for key, value in props.items()
        if key.startswith(PHASE_PREFIX) and isinstance(value, int | float)
    }
    failed = [r for r in reports if r.failed]
    skipped = [r for r in reports if r.skipped]
    result: Result
    severity: Severity
    if failed:
        first = dict(failed[0].user_properties)
        result, reason = "fail", str(first.get(REASON_KEY, "probe_error:unknown"))
        severity = "critical" if first.get(SEVERITY_KEY) == "critical" else "error"
        detail = str(first.get(DETAIL_KEY, ""))
        metadata["phase"] = failed[0].when
        if len(failed) > 1:
            later = dict(failed[1].user_properties).get(REASON_KEY, "probe_error:unknown")
            metadata["also"] = f"{failed[1].when}:{later}"
    elif skipped:
        result, severity = "degraded", "warning"
        stamped = dict(skipped[0].user_properties)
        if REASON_KEY in stamped:
            reason, detail = str(stamped[REASON_KEY]), str(stamped.get(DETAIL_KEY, ""))
        else:
            reason, detail = reason_from_skip(skip_message(skipped[0]))
        metadata["phase"] = skipped[0].when
    elif latency is not None and latency > slow_threshold:
        result, severity, reason = "degraded", "warning", "slow"
        detail = f"{latency:.3f}s over the {slow_threshold:g}s budget"
    else:
        result, severity, reason, detail = "pass", "info", "ok", ""
    return Outcome(
        leg=leg,
        result=result,
        severity=severity,
        reason=reason[:REASON_LIMIT],
        latency_seconds=None if latency is None else round(latency, 6),
        run_id=run_id,
        timestamp=time.time() if now is None else now,
        environment=environment,
        detail=detail[:DETAIL_LIMIT],
        metadata=metadata,
        phases=phases,
        trace_id=str(props[TRACE_KEY]) if props.get(TRACE_KEY) else None,
    )
