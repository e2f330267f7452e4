"""Tracing inside an xdist worker: the legs' exchanges happen here, so their spans are made here.

Under ``pytest -n N`` a leg runs in a worker process, which has no signals controller; the
controller hands each worker its run span as a ``traceparent`` (``workerinput``) and the worker
traces the legs it runs under it — a leg span per attempt, the exchanges as its CLIENT children,
the trace id stamped on the reports the controller's outcomes read. The attempt's result on the span
is decided by the same ledger and rules the controller uses.
"""

from __future__ import annotations

from typing import Any

import pytest

from runner.signals.ledger import AttemptEnded, Ledger, leg_of
from runner.signals.redact import redactor_of
from runner.signals.rules import Judging
from runner.signals.traces import Traces
from synthetics.config import ProbeConfig
from synthetics.plugin import CONFIG_KEY
from synthetics.run import RUN_KEY, RunContext


class WorkerTracing:
    def __init__(self, traces: Traces, run: RunContext, ledger: Ledger) -> None:
        self.traces = traces
        self.run = run
        self.ledger = ledger

    @classmethod
    def install(cls, config: pytest.Config, traceparent: str) -> None:
        """Register on a worker whose controller traces this run (and the worker's environment agrees)."""
        probe_config = config.stash.get(CONFIG_KEY, ProbeConfig())
        traces = Traces.from_config(probe_config.trace_export)
        if traces is None:
            return
        traces.join_run(traceparent)
        config.add_cleanup(traces.shutdown)  # the worker's last spans leave before it exits
        run = config.stash[RUN_KEY]
        judging = Judging(run_id=run.run_id, config=probe_config,
                          redactor=redactor_of(config))
        config.pluginmanager.register(cls(traces, run, Ledger(judging)), "payment_probe_worker_tracing")

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        leg = leg_of(nodeid)
        if leg is not None:
            trace_id = self.traces.start_leg(leg.name, attempt=self.ledger.attempt_number(nodeid))
            self.run.spans.install(self.traces.exchange, trace_id)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for event in self.ledger.receive(report):
            decided = event.attempt if isinstance(event, AttemptEnded) else event.outcome
            self.traces.end_leg(decided.result, decided.severity, decided.reason)

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.run.spans.uninstall()
