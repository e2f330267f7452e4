"""The signals controller: the one process of a session that decides outcomes and delivers them.

It runs where the reports gather (the only process, or xdist's controller, which receives every
worker's reports in ``pytest_runtest_logreport``): the ledger and the rules decide, and this class
does only the I/O — spans, sink calls, the JSON file, the terminal table. The runner passes its own
long-lived instance; a laptop or CI session gets one built from the environment (``standalone``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from runner.signals.atomic import write_atomically
from runner.signals.ledger import AttemptEnded, Event, Ledger, OutcomeDecided, leg_of
from runner.signals.outcome import Outcome
from runner.signals.redact import Redactor, redactor_of
from runner.signals.rules import Judging, degraded_by_the_api
from runner.signals.sink import OutcomeSink
from runner.signals.table import outcome_table
from runner.signals.traces import Traces
from synthetics.config import DEFAULT_LOCATION, ProbeConfig
from synthetics.plugin import CONFIG_KEY
from synthetics.run import RUN_KEY, RunContext

log = logging.getLogger("payment_probe.signals")

TRACEPARENT_INPUT = "payment_probe_traceparent"  # the run span an xdist worker joins (workerinput key)


class SignalsPlugin:
    """Turns the ledger's events into signals; one instance may serve many sessions (the runner)."""

    def __init__(
        self,
        sinks: Sequence[OutcomeSink],
        *,
        on_sink_error: Callable[[str, BaseException], None] | None = None,
        json_path: str | None = None,
        expected_legs: Iterable[str] = (),
        summary: bool = False,
        fail_on_degraded: bool = False,
        traces: Traces | None = None,
    ) -> None:
        self.sinks = list(sinks)
        # Legs that must end with an outcome even when pytest never ran them (the runner runs
        # them all): a leg module that fails to import would otherwise go silent, not red.
        self.expected_legs = tuple(expected_legs)
        self._on_sink_error = on_sink_error
        self.json_path = json_path
        self.summary = summary  # print the outcome table in pytest's terminal summary (laptop, CI)
        self.fail_on_degraded = fail_on_degraded  # --probe-fail-on=degraded: a CI gate's choice
        self.traces = traces  # spans of runs, legs and exchanges (SPEC 16); None: tracing is off
        self._ledger = Ledger(Judging(run_id=""))
        self._config: ProbeConfig | None = None
        self._run = RunContext("")
        self._redactor = Redactor(())
        self._active = False
        self._workers_trace = False  # under xdist each worker traces the legs it runs
        self._capman: Any = None

    @property
    def outcomes(self) -> list[Outcome]:
        """This session's outcomes, in the order they were decided."""
        return self._ledger.outcomes

    # ---- session lifecycle ---------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        config = session.config
        self._active = not hasattr(config, "workerinput")
        self._config = config.stash.get(CONFIG_KEY, None)
        self._run = config.stash.get(RUN_KEY, RunContext(""))
        self._redactor = redactor_of(config)  # the one the report scrubbing uses: secrets read once
        self._ledger = Ledger(Judging(run_id=self._run.run_id, config=self._config or ProbeConfig(),
                                      maintenance=self._run.maintenance, redactor=self._redactor))
        self._workers_trace = config.pluginmanager.has_plugin("dsession")
        self._capman = config.pluginmanager.getplugin("capturemanager")
        if self._active:
            self._start_run()

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist starts a worker (before or after this session's start): it joins this run's span."""
        self._start_run(node.config)
        if self.traces is not None and (traceparent := self.traces.run_traceparent()):
            node.workerinput[TRACEPARENT_INPUT] = traceparent

    def _start_run(self, config: pytest.Config | None = None) -> None:
        if self.traces is None or self.traces.running:
            return
        probe_config = self._config or (config.stash.get(CONFIG_KEY, None) if config is not None else None)
        run = config.stash.get(RUN_KEY, self._run) if config is not None else self._run
        location = probe_config.location if probe_config else DEFAULT_LOCATION
        self.traces.start_run(run.run_id, location, probe_config.environment if probe_config else None)

    # ---- a leg attempt: its span, its reports ----------------------------------------------
    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        """Each attempt starts here (pytest-rerunfailures calls it again per retry): a span per attempt,
        current while the attempt runs, so its exchanges are its children."""
        leg = leg_of(nodeid)
        if not self._active or self.traces is None or leg is None or self._workers_trace:
            return
        trace_id = self.traces.start_leg(leg.name, attempt=self._ledger.attempt_number(nodeid))
        self._run.spans.install(self.traces.exchange, trace_id)

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self._run.spans.uninstall()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Decide at teardown, before junitxml reads the report: its properties carry the outcome.

        A teardown whose attempt holds a ``rerun`` report (pytest-rerunfailures: the runner's
        confirmation) ends an attempt, not the leg: it is counted and the leg runs again.
        """
        if not self._active:
            return
        for event in self._ledger.receive(report):
            self._deliver(event)
            if isinstance(event, OutcomeDecided):
                outcome = event.outcome
                report.user_properties = [
                    *report.user_properties, ("probe.result", outcome.result),
                    ("probe.severity", outcome.severity), ("probe.reason", outcome.reason),
                ]

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if self._active and report.failed:
            text = str(report.longrepr).strip().splitlines()
            self._ledger.collection_failed(f"{report.nodeid}: {text[-1] if text else 'collection failed'}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self._active:
            return
        # Stopped on purpose (SIGTERM): a leg not begun did not fail.
        expected = self.expected_legs if self._config is not None else ()
        for event in self._ledger.finish(expected=expected, stopped=bool(session.shouldstop)):
            self._deliver(event)
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

    # ---- delivery ------------------------------------------------------------------------
    def _deliver(self, event: Event) -> None:
        """An attempt is counted (and its span ended); an outcome ends its span, reaches every sink's
        ``record`` and is counted as the leg's last attempt."""
        decided = event.attempt if isinstance(event, AttemptEnded) else event.outcome
        if self.traces is not None:  # the attempt's logfinish uninstalls its exchange spans
            self.traces.end_leg(decided.result, decided.severity, decided.reason)
        if isinstance(event, OutcomeDecided):
            for sink in self.sinks:
                self._guard(sink.name, lambda: sink.record(decided))  # noqa: B023 - called at once
        for sink in self.sinks:
            self._guard(sink.name, lambda: sink.attempt(decided))  # noqa: B023 - called at once

    def _flush(self) -> None:
        batch = list(self.outcomes)
        for sink in self.sinks:
            self._guard(sink.name, lambda: sink.flush(batch))  # noqa: B023 - called at once
        if self.json_path:
            self._write_json(self.json_path)

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
