"""The signals plugin's hooks (``-p runner.signals.plugin``): what runs in every pytest process.

They add the options, stamp a failed or skipped report with its reason where the exception is
still at hand (an xdist worker included) and scrub every report of secrets. The deciding and the
delivering are the controller's (``runner.signals.controller``), which this module registers for a
session the runner did not hand one to (laptop, CI gate); in an xdist worker it registers the
worker's tracing instead (``runner.signals.worker``).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from runner.signals.controller import TRACEPARENT_INPUT, SignalsPlugin
from runner.signals.ledger import leg_of
from runner.signals.outcome import DETAIL_KEY, REASON_KEY, SEVERITY_KEY, TRACE_KEY
from runner.signals.redact import Redactor, redactor_of
from runner.signals.rules import failure_details, reason_from_skip
from synthetics.failures import LegFailed, one_line
from synthetics.leg_report import DETAIL_LIMIT
from synthetics.run import RUN_KEY

HELP_JSON = "write this session's outcomes as a JSON array to PATH"
HELP_PUSHGATEWAY = "push this session's metrics to a Prometheus Pushgateway at URL"
HELP_LOG = "append the outcomes' JSON log lines to PATH (default: through pytest's logging)"
HELP_FAIL_ON = ("what fails the session: fail (default) or degraded (a leg degraded by the API's answer fails it "
                "too; one skipped for configuration it was not given never does)")


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
    leg = leg_of(item.nodeid)
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
    run = item.config.stash.get(RUN_KEY, None)
    trace_id = run.spans.trace_id if run is not None else None
    if trace_id is not None and leg is not None:
        report.user_properties = [*report.user_properties, (TRACE_KEY, trace_id)]
    scrub_report(report, redactor_of(item.config))


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Outside the runner, build a signals controller from the environment (laptop, CI gate); in an
    xdist worker whose controller traces the run, trace the legs the worker runs."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        if workerinput.get(TRACEPARENT_INPUT):
            from runner.signals.worker import WorkerTracing

            WorkerTracing.install(config, workerinput[TRACEPARENT_INPUT])
        return
    if any(isinstance(p, SignalsPlugin) for p in config.pluginmanager.get_plugins()):
        return
    from runner.signals.standalone import build_session_plugin

    config.pluginmanager.register(build_session_plugin(config), "payment_probe_signals")
