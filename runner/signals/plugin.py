"""The signals plugin: exactly one outcome per leg, fanned out to every sink.

Two halves. Module-level hooks run in every pytest process (xdist workers included): they
add the options and stamp a failed or skipped report with its reason. ``SignalsPlugin``
runs on the controller only: it assembles outcomes from ``pytest_runtest_logreport`` (where
xdist delivers worker reports) and delivers them. The runner passes its own long-lived
instance; a laptop or CI session gets one built from the environment.
"""

from __future__ import annotations

import contextlib
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
    Outcome,
    assemble,
    failure_details,
)
from runner.signals.redact import Redactor
from runner.signals.sink import OutcomeSink
from synthetics.config import ProbeConfig
from synthetics.plugin import CONFIG_KEY, RUN_ID_KEY
from synthetics.registry import Leg, leg_for_test, slow_threshold

log = logging.getLogger("payment_probe.signals")

HELP_JSON = "write this session's outcomes as a JSON array to PATH"
HELP_PUSHGATEWAY = "push this session's metrics to a Prometheus Pushgateway at URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("payment-probe", "payment-probe legs")
    group.addoption("--probe-json", dest="probe_json", default=None, metavar="PATH", help=HELP_JSON)
    group.addoption(
        "--probe-pushgateway", dest="probe_pushgateway", default=None, metavar="URL",
        help=HELP_PUSHGATEWAY,
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Stamp the reason on the report where the exception is still at hand (worker or not)."""
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or not report.failed:
        return
    reason, severity, detail = failure_details(call.excinfo.value)
    # A new list: the report shares item.user_properties, and later phases must not inherit.
    report.user_properties = [
        *report.user_properties,
        (REASON_KEY, reason),
        (SEVERITY_KEY, severity),
        (DETAIL_KEY, detail[:500]),
    ]


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Outside the runner, build a signals plugin from the environment (laptop, CI gate)."""
    if hasattr(config, "workerinput"):
        return
    if any(isinstance(p, SignalsPlugin) for p in config.pluginmanager.get_plugins()):
        return
    from runner.signals.standalone import build_session_plugin

    config.pluginmanager.register(build_session_plugin(config), "payment_probe_signals")


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
    ) -> None:
        self.sinks = list(sinks)
        # Legs that must end with an outcome even when pytest never ran them (the runner runs
        # them all): a leg module that fails to import would otherwise go silent, not red.
        self.expected_legs = tuple(expected_legs)
        self._collection_errors: list[str] = []
        self._on_sink_error = on_sink_error
        self.json_path = json_path
        self.after_flush = after_flush
        self.outcomes: list[Outcome] = []
        self._reports: dict[str, list[Any]] = {}
        self._config: ProbeConfig | None = None
        self._run_id = ""
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
        self._collection_errors = []
        self._config = config.stash.get(CONFIG_KEY, None)
        self._run_id = config.stash.get(RUN_ID_KEY, "")
        self._redactor = Redactor(self._config.secrets() if self._config else ())
        self._capman = config.pluginmanager.getplugin("capturemanager")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self._active:
            return
        if _leg_of(report.nodeid) is None:
            return
        self._reports.setdefault(report.nodeid, []).append(report)
        if report.when == "teardown":
            self._decide(report.nodeid)

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
        self._account_for_missing_legs()
        self._flush()

    def _account_for_missing_legs(self) -> None:
        decided = {o.leg for o in self.outcomes}
        for name in self.expected_legs:
            if name in decided:
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
    def _decide(self, nodeid: str) -> None:
        reports = self._reports.pop(nodeid, None)
        if not reports:
            return
        leg = _leg_of(nodeid)
        assert leg is not None  # only leg reports are kept
        config = self._config or ProbeConfig()
        outcome = assemble(
            leg.name, reports, slow_threshold=slow_threshold(leg, config),
            run_id=self._run_id, environment=config.environment,
        )
        self._emit(outcome)

    def _emit(self, outcome: Outcome) -> None:
        outcome = self._redactor.outcome(outcome)
        self.outcomes.append(outcome)
        for sink in self.sinks:
            self._deliver(sink, "record", outcome)

    def _flush(self) -> None:
        for sink in self.sinks:
            self._deliver(sink, "flush", list(self.outcomes))
        if self.json_path:
            self._write_json(self.json_path)
        if self.after_flush is not None:
            self._guard("after_flush", lambda: self.after_flush(list(self.outcomes)))  # type: ignore[misc]

    def _deliver(self, sink: OutcomeSink, method: str, arg: Any) -> None:
        self._guard(sink.name, lambda: getattr(sink, method)(arg))

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
        text = json.dumps([o.summary() for o in self.outcomes], indent=2)
        self._guard("json", lambda: write_atomically(Path(path), text))
