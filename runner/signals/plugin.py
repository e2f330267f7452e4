"""The signals plugin: exactly one outcome per leg, fanned out to every sink.

Two halves. Module-level hooks run in every pytest process (xdist workers included): they
add the options and stamp a failed or skipped report with its reason. ``SignalsPlugin``
runs on the controller only: it assembles outcomes from ``pytest_runtest_logreport`` (where
xdist delivers worker reports) and delivers them. The runner passes its own long-lived
instance; a laptop or CI session gets one built from the environment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from runner.signals.atomic import write_atomically
from runner.signals.outcome import (
    DETAIL_KEY,
    REASON_KEY,
    SEVERITY_KEY,
    TRACE_KEY,
    Outcome,
    assemble,
    reason_from_skip,
)
from runner.signals.redact import Redactor
from runner.signals.sink import OutcomeSink
from runner.signals.table import outcome_table
from runner.signals.traces import Traces
from synthetics import tracing
from synthetics.config import DEFAULT_LOCATION, ProbeConfig
from synthetics.failures import LegFailed, one_line
from synthetics.leg_report import DETAIL_LIMIT
from synthetics.plugin import CONFIG_KEY, MAINTENANCE_KEY, RUN_ID_KEY
from synthetics.registry import Leg, leg_for_test, slow_threshold

log = logging.getLogger("payment_probe.signals")

HELP_JSON = "write this session's outcomes as a JSON array to PATH"
HELP_PUSHGATEWAY = "push this session's metrics to a Prometheus Pushgateway at URL"
HELP_LOG = "append the outcomes' JSON log lines to PATH (default: through pytest's logging)"
HELP_FAIL_ON = ("what fails the session: fail (default) or degraded (a leg degraded by the API's answer fails it "
                "too; one skipped for configuration it was not given never does)")

REDACTOR_KEY = pytest.StashKey[Redactor]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("payment-probe", "payment-probe legs")
    group.addoption("--probe-json", dest="probe_json", default=None, metavar="PATH", help=HELP_JSON)
    group.addoption(
        "--probe-pushgateway", dest="probe_pushgateway", default=None, metavar="URL",
        help=HELP_PUSHGATEWAY,
    )
    group.addoption("--probe-log", dest="probe_log", default=None, metavar="PATH", help=HELP_LOG)
    group.addoption("--probe-fail-on", dest="probe_fail_on", default="fail", choices=("fail", "degraded"),
                    help=HELP_FAIL_ON)


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
        return ("timeout" if message.startswith("Timeout") else "failed"), "error", message
    if isinstance(exc, AssertionError):
        return "assertion_failed", "error", message
    return f"probe_error:{type(exc).__name__}", "error", message


def redactor_of(config: pytest.Config) -> Redactor:
    """One per session (every process): the secret values of this session's configuration."""
    if REDACTOR_KEY not in config.stash:
        probe_config = config.stash.get(CONFIG_KEY, None)
        config.stash[REDACTOR_KEY] = Redactor(probe_config.secrets() if probe_config else ())
    return config.stash[REDACTOR_KEY]


def scrub_report(report: pytest.TestReport, redactor: Redactor) -> None:
    """Second line of defence: no secret value or secret-shaped string survives in what pytest
    prints or writes (failure text at any ``--tb``/``-l``, captured output, JUnit, xdist)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        report.longrepr = (longrepr[0], longrepr[1], redactor.text(str(longrepr[2])))
    elif longrepr is not None:
        text = str(longrepr)
        clean = redactor.text(text)
        if clean != text:
            report.longrepr = clean
    report.sections = [(title, redactor.text(content)) for title, content in report.sections]
    report.user_properties = [(k, redactor.value(v)) for k, v in report.user_properties]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Stamp the reason on the report where the exception is still at hand (worker or not).

    A leg that ends with a known reason is reported in one line, ``leg result (severity):
    reason — detail``: ``LegFailed`` and ``degrade`` carry it; a real bug keeps its traceback.
    """
    leg = _leg_of(item.nodeid)
    exc = call.excinfo.value if call.excinfo is not None else None
    stamp: tuple[str, str, str] | None = None
    if exc is not None and isinstance(exc, pytest.skip.Exception):
        reason, detail = reason_from_skip(str(exc.msg or ""))
        stamp = (reason, "warning", detail)
        if leg is not None:
            exc.msg = one_line(leg.name, "degraded", "warning", reason, detail)
    elif exc is not None:
        stamp = failure_details(exc)
        if leg is not None and isinstance(exc, LegFailed):
            reason, severity, detail = stamp
            exc.msg = one_line(leg.name, "fail", severity, reason, detail)
    outcome = yield
    report = outcome.get_result()
    crash = getattr(report.longrepr, "reprcrash", None)
    if isinstance(exc, LegFailed) and crash is not None:
        crash.message = str(exc.msg)  # the FAILED line and JUnit's message: the one line, no class path
    if stamp is not None and (report.failed or report.skipped):
        # A new list: the report shares item.user_properties, and later phases must not inherit.
        reason, severity, detail = stamp
        report.user_properties = [
            *report.user_properties, (REASON_KEY, reason), (SEVERITY_KEY, severity),
            (DETAIL_KEY, detail[:DETAIL_LIMIT]),
        ]
    trace_id = tracing.current_trace_id()
    if trace_id is not None and leg is not None:
        report.user_properties = [*report.user_properties, (TRACE_KEY, trace_id)]
    scrub_report(report, redactor_of(item.config))


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Outside the runner, build a signals plugin from the environment (laptop, CI gate)."""
    if hasattr(config, "workerinput"):
        return
    if any(isinstance(p, SignalsPlugin) for p in config.pluginmanager.get_plugins()):
        return
    from runner.signals.standalone import build_session_plugin

    config.pluginmanager.register(build_session_plugin(config), "payment_probe_signals")


class _Retried:
    """A report of an attempt pytest-rerunfailures retries (outcome ``rerun``): read as the failure it was."""

    def __init__(self, report: Any) -> None:
        self.when, self.longrepr, self.user_properties = report.when, report.longrepr, report.user_properties
        self.outcome = "failed" if report.outcome == "rerun" else report.outcome

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"

    @property
    def skipped(self) -> bool:
        return self.outcome == "skipped"


def not_configured(outcome: Outcome) -> bool:
    """A leg skipped for configuration this session was not given (no provider key, no database)."""
    return outcome.result == "degraded" and outcome.reason.startswith("config_missing:")


def degraded_by_the_api(outcome: Outcome) -> bool:
    """Degraded because of what the API answered (slow, 401/403/429, ``not_https``): a gate's failure;
    a leg it was given no configuration for is not (SPEC 19)."""
    return outcome.result == "degraded" and not not_configured(outcome)


def _leg_of(nodeid: str) -> Leg | None:
    """``path::test_billing_state[param]`` → the ``billing_state`` leg; None for other tests."""
    return leg_for_test(nodeid.rsplit("::", 1)[-1].split("[", 1)[0])


class SignalsPlugin:
    """Assembles and delivers outcomes; one instance may serve many sessions (the runner)."""

    def __init__(
        self,
        sinks: Sequence[OutcomeSink],
        *,
        on_sink_error: Callable[[str, BaseException], None] | None = None,
        json_path: str | None = None,
        after_flush: Callable[[list[Outcome]], None] | None = None,
        expected_legs: Iterable[str] = (),
        summary: bool = False,
        fail_on_degraded: bool = False,
        traces: Traces | None = None,
    ) -> None:
        self.sinks = list(sinks)
        # Legs that must end with an outcome even when pytest never ran them (the runner runs
        # them all): a leg module that fails to import would otherwise go silent, not red.
        self.expected_legs = tuple(expected_legs)
        self._collection_errors: list[str] = []
        self._on_sink_error = on_sink_error
        self.json_path = json_path
        self.after_flush = after_flush
        self.summary = summary  # print the outcome table in pytest's terminal summary (laptop, CI)
        self.fail_on_degraded = fail_on_degraded  # --probe-fail-on=degraded: a CI gate's choice
        self.traces = traces  # spans of runs, legs and exchanges (SPEC 16); None: tracing is off
        self.outcomes: list[Outcome] = []
        self._reports: dict[str, list[Any]] = {}
        self._attempts: dict[str, list[Outcome]] = {}  # a leg's failed attempts before its last
        self._config: ProbeConfig | None = None
        self._run_id = ""
        self._maintenance = False
        self._redactor = Redactor(())
        self._active = False
        self._capman: Any = None

    # ---- session lifecycle ---------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        config = session.config
        self._active = not hasattr(config, "workerinput")
        self.outcomes = []
        self._reports = {}
        self._attempts = {}
        self._collection_errors = []
        self._config = config.stash.get(CONFIG_KEY, None)
        self._run_id = config.stash.get(RUN_ID_KEY, "")
        self._maintenance = config.stash.get(MAINTENANCE_KEY, False)  # outcomes carry maintenance: true
        self._redactor = redactor_of(config)  # the one the report scrubbing uses: secrets read once
        self._capman = config.pluginmanager.getplugin("capturemanager")
        if self._active and self.traces is not None:
            environment = self._config.environment if self._config else None
            location = self._config.location if self._config else DEFAULT_LOCATION
            self.traces.start_run(self._run_id, location, environment)

    # ---- a leg attempt: its span, its reports ----------------------------------------------
    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        """Each attempt starts here (pytest-rerunfailures calls it again per retry): a span per attempt,
        current while the attempt runs, so its exchanges are its children."""
        leg = _leg_of(nodeid)
        if not self._active or self.traces is None or leg is None:
            return
        attempt = len(self._attempts.get(nodeid, [])) + 1
        tracing.install(self.traces.exchange, self.traces.start_leg(leg.name, attempt=attempt))

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        tracing.uninstall()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Decide at teardown, before junitxml reads the report: its properties carry the outcome.

        A teardown whose attempt holds a ``rerun`` report (pytest-rerunfailures: the runner's
        confirmation) ends an attempt, not the leg: it is counted and the leg runs again.
        """
        if not self._active:
            return
        if _leg_of(report.nodeid) is None:
            return
        self._reports.setdefault(report.nodeid, []).append(report)
        if report.when != "teardown":
            return
        if any(r.outcome == "rerun" for r in self._reports[report.nodeid]):
            self._attempt_failed(report.nodeid)
            return
        outcome = self._decide(report.nodeid)
        if outcome is not None:
            report.user_properties = [
                *report.user_properties, ("probe.result", outcome.result),
                ("probe.severity", outcome.severity), ("probe.reason", outcome.reason),
            ]

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if self._active and report.failed:
            text = str(report.longrepr).strip().splitlines()
            self._collection_errors.append(f"{report.nodeid}: {text[-1] if text else 'collection failed'}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self._active:
            return
        for nodeid in list(self._reports):  # a leg interrupted before its teardown report
            self._decide(nodeid)
        if not session.shouldstop:  # stopped on purpose (SIGTERM): a leg not begun did not fail
            self._account_for_missing_legs()
        if self.traces is not None:
            self.traces.end_run(any(o.result == "fail" for o in self.outcomes))
        self._flush()
        if self.fail_on_degraded and session.exitstatus == pytest.ExitCode.OK and any(
            degraded_by_the_api(o) for o in self.outcomes
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """The outcome table after pytest's own summary, once (on the xdist controller)."""
        if not (self._active and self.summary and self.outcomes):
            return
        terminalreporter.write_sep("=", "payment-probe outcomes")
        for line in outcome_table(self.outcomes):
            terminalreporter.write_line(line)

    def _account_for_missing_legs(self) -> None:
        decided = {o.leg for o in self.outcomes}
        selected = self._config.legs if self._config else ()  # the session's legs (PAYMENT_PROBE_LEGS, the tick's)
        for name in self.expected_legs:
            if name in decided or name not in selected:
                continue
            reason = "probe_error:CollectionError" if self._collection_errors else "probe_error:NotCollected"
            detail = "; ".join(self._collection_errors)[:500] or "the leg's test was not collected"
            self._emit(Outcome(
                leg=name, result="fail", severity="error", reason=reason, latency_seconds=None,
                run_id=self._run_id, timestamp=time.time(),
                environment=self._config.environment if self._config else None,
                detail=detail, metadata={"phase": "collect"},
            ))

    # ---- outcome assembly ----------------------------------------------------------------
    def _assemble(self, nodeid: str, reports: Sequence[Any]) -> Outcome:
        leg = _leg_of(nodeid)
        assert leg is not None  # only leg reports are kept
        config = self._config or ProbeConfig()
        return assemble(leg.name, reports, slow_threshold=slow_threshold(leg, config),
                        run_id=self._run_id, environment=config.environment)

    def _attempt_failed(self, nodeid: str) -> None:
        """An attempt the confirmation retries: counted (and its span ended), never an outcome."""
        attempt = self._redactor.outcome(self._assemble(nodeid, [_Retried(r) for r in self._reports.pop(nodeid)]))
        self._attempts.setdefault(nodeid, []).append(attempt)
        self._count_attempt(attempt)
        if self.traces is not None:  # the attempt's logfinish uninstalls its exchange spans
            self.traces.end_leg(attempt.result, attempt.severity, attempt.reason)

    def _count_attempt(self, attempt: Outcome) -> None:
        for sink in self.sinks:
            count = getattr(sink, "attempt", None)  # the metrics sink counts every attempt
            if count is not None:
                self._guard(sink.name, lambda: count(attempt))  # noqa: B023 - called at once

    def _decide(self, nodeid: str) -> Outcome | None:
        reports = self._reports.pop(nodeid, None)
        if not reports:
            return None
        outcome = self._assemble(nodeid, reports)
        earlier = self._attempts.pop(nodeid, [])
        outcome = dataclasses.replace(
            outcome, attempts=len(earlier) + 1,
            recovered_from=earlier[0].reason if earlier and outcome.result != "fail" else None)
        if self.traces is not None:
            self.traces.end_leg(outcome.result, outcome.severity, outcome.reason)
        emitted = self._emit(outcome)
        self._count_attempt(emitted)
        return emitted

    def _emit(self, outcome: Outcome) -> Outcome:
        outcome = self._redactor.outcome(outcome)
        if self._config is not None and outcome.location != self._config.location:
            outcome = dataclasses.replace(outcome, location=self._config.location)
        if self._maintenance:
            outcome = dataclasses.replace(outcome, maintenance=True)
        self.outcomes.append(outcome)
        for sink in self.sinks:
            self._guard(sink.name, lambda: sink.record(outcome))  # noqa: B023 - called at once
        return outcome

    def _flush(self) -> None:
        batch = list(self.outcomes)
        for sink in self.sinks:
            self._guard(sink.name, lambda: sink.flush(batch))  # noqa: B023 - called at once
        if self.json_path:
            self._write_json(self.json_path)
        if self.after_flush is not None:
            self._guard("after_flush", lambda: self.after_flush(list(self.outcomes)))  # type: ignore[misc]

    def _guard(self, name: str, action: Callable[[], None]) -> None:
        """Run one sink step outside pytest's capture; a raise is counted and logged, never spread."""
        try:
            if self._capman is not None:
                with self._capman.global_and_fixture_disabled():
                    action()
            else:
                action()
        except Exception as exc:
            if self._on_sink_error is not None:
                with contextlib.suppress(Exception):
                    self._on_sink_error(name, exc)
            log.error("signal sink %s failed: %s", name, self._redactor.text(f"{type(exc).__name__}: {exc}"))

    def _write_json(self, path: str) -> None:
        text = json.dumps([o.record() for o in self.outcomes], indent=2)
        self._guard("json", lambda: write_atomically(Path(path), text))
