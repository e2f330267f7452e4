"""The rules that turn a leg's setup/call/teardown reports into its outcome (SPEC sections 1, 10, 15).

Pure functions of the reports and of what the run knows (``Judging``): each ``Outcome`` is built
here once, whole — redacted, located, stamped with maintenance, attempts and what it recovered
from — and never patched afterwards. The same leg gets the same outcome whether it ran in the
cluster, on a laptop or in a CI gate, serially or under xdist.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from runner.signals.outcome import (
    DETAIL_KEY,
    REASON_KEY,
    REASON_LIMIT,
    SEVERITY_KEY,
    TRACE_KEY,
    Outcome,
    PhaseReport,
    Result,
    Scalar,
    Severity,
)
from runner.signals.redact import Redactor
from synthetics import reasons
from synthetics.config import ProbeConfig
from synthetics.failures import LegFailed
from synthetics.leg_report import DETAIL_LIMIT, DETAIL_PREFIX, LATENCY_KEY, PHASE_PREFIX
from synthetics.registry import Leg, slow_threshold

_TOKEN = re.compile(r"^[a-z][a-z0-9_]*(:[A-Za-z0-9_.\-]+)?$")


@dataclass(frozen=True)
class Judging:
    """What the rules read besides the reports: the run's id and configuration, whether a maintenance
    window is open, the secrets to scrub and the clock."""

    run_id: str
    config: ProbeConfig = field(default_factory=ProbeConfig)
    maintenance: bool = False
    redactor: Redactor = field(default_factory=lambda: Redactor(()))
    clock: Callable[[], float] = time.time


def failure_details(exc: BaseException) -> tuple[str, str, str]:
    """(reason, severity, detail) for the exception that failed a phase.

    The vocabulary is closed: only ``LegFailed`` names its reason. Any other exception is a bug in
    the probe (``probe_error:<Type>``), whatever attributes it carries (``UnicodeError.reason``,
    ``SSLError.reason`` are free text, not reasons).
    """
    if isinstance(exc, LegFailed):
        return exc.reason, "critical" if exc.severity == "critical" else "error", exc.detail
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, pytest.fail.Exception):
        # pytest-timeout's signal method ends a leg with pytest.fail("Timeout ...").
        return (reasons.TIMEOUT if message.startswith("Timeout") else reasons.FAILED), "error", message
    if isinstance(exc, AssertionError):
        return reasons.ASSERTION_FAILED, "error", message
    return reasons.probe_error(type(exc).__name__), "error", message


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
    return reasons.SKIPPED, message


def not_configured(outcome: Outcome) -> bool:
    """A leg skipped for configuration this session was not given (no provider key, no database)."""
    return outcome.result == "degraded" and reasons.is_config_missing(outcome.reason)


def degraded_by_the_api(outcome: Outcome) -> bool:
    """Degraded because of what the API answered (slow, 401/403/429, ``not_https``): a gate's failure;
    a leg it was given no configuration for is not (SPEC 19)."""
    return outcome.result == "degraded" and not not_configured(outcome)


class Retried:
    """A report of an attempt pytest-rerunfailures retries (outcome ``rerun``): read as the failure it was."""

    def __init__(self, report: PhaseReport) -> None:
        self.when, self.longrepr, self.user_properties = report.when, report.longrepr, report.user_properties
        self.outcome = "failed" if report.outcome == "rerun" else report.outcome

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"

    @property
    def skipped(self) -> bool:
        return self.outcome == "skipped"


def _properties(reports: Sequence[PhaseReport]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for report in reports:
        for key, value in report.user_properties:
            merged[key] = value
    return merged


def _verdict(reports: Sequence[PhaseReport], latency: float | None, budget: float,
             metadata: dict[str, Scalar]) -> tuple[Result, Severity, str, str]:
    """Fail beats degraded beats pass; the first failing phase names the reason."""
    failed = [r for r in reports if r.failed]
    skipped = [r for r in reports if r.skipped]
    if failed:
        first = dict(failed[0].user_properties)
        metadata["phase"] = failed[0].when
        if len(failed) > 1:
            later = dict(failed[1].user_properties).get(REASON_KEY, reasons.UNKNOWN)
            metadata["also"] = f"{failed[1].when}:{later}"
        severity: Severity = "critical" if first.get(SEVERITY_KEY) == "critical" else "error"
        return "fail", severity, str(first.get(REASON_KEY, reasons.UNKNOWN)), str(first.get(DETAIL_KEY, ""))
    if skipped:
        metadata["phase"] = skipped[0].when
        stamped = dict(skipped[0].user_properties)
        if REASON_KEY in stamped:
            return "degraded", "warning", str(stamped[REASON_KEY]), str(stamped.get(DETAIL_KEY, ""))
        return "degraded", "warning", *reason_from_skip(skip_message(skipped[0]))
    if latency is not None and latency > budget:
        return "degraded", "warning", reasons.SLOW, f"{latency:.3f}s over the {budget:g}s budget"
    return "pass", "info", reasons.OK, ""


def judge(leg: Leg, reports: Sequence[PhaseReport], judging: Judging, *,
          earlier: Sequence[Outcome] = ()) -> Outcome:
    """The outcome of ``leg``'s attempt whose reports these are, after ``earlier`` attempts that
    the confirmation retried (SPEC 15): what it recovered from is the first one's reason."""
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
    result, severity, reason, detail = _verdict(reports, latency, slow_threshold(leg, judging.config), metadata)
    return _outcome(
        judging, leg=leg.name, result=result, severity=severity, reason=reason, detail=detail,
        latency_seconds=None if latency is None else round(latency, 6), metadata=metadata, phases=phases,
        attempts=len(earlier) + 1,
        recovered_from=earlier[0].reason if earlier and result != "fail" else None,
        trace_id=str(props[TRACE_KEY]) if props.get(TRACE_KEY) else None,
    )


def not_collected(leg: str, judging: Judging, collection_errors: Sequence[str]) -> Outcome:
    """A leg the session was to run that pytest never ran (its module failed to import): red, not silent."""
    reason = reasons.probe_error("CollectionError" if collection_errors else "NotCollected")
    detail = "; ".join(collection_errors)[:500] or "the leg's test was not collected"
    return _outcome(judging, leg=leg, result="fail", severity="error", reason=reason, detail=detail,
                    latency_seconds=None, metadata={"phase": "collect"})


def _outcome(judging: Judging, *, leg: str, result: Result, severity: Severity, reason: str, detail: str,
             latency_seconds: float | None, metadata: dict[str, Scalar], phases: dict[str, float] | None = None,
             attempts: int = 1, recovered_from: str | None = None, trace_id: str | None = None) -> Outcome:
    """The one place an ``Outcome`` is made: capped, redacted, located and stamped at birth."""
    scrub = judging.redactor
    return Outcome(
        leg=leg, result=result, severity=severity,
        reason=scrub.text(reason[:REASON_LIMIT]),
        latency_seconds=latency_seconds,
        run_id=judging.run_id,
        timestamp=judging.clock(),
        environment=judging.config.environment,
        detail=scrub.text(detail[:DETAIL_LIMIT]),
        metadata=scrub.mapping(metadata),
        phases=phases or {},
        maintenance=judging.maintenance,
        attempts=attempts,
        recovered_from=None if recovered_from is None else scrub.text(recovered_from),
        location=judging.config.location,
        trace_id=trace_id,
    )
