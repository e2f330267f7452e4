"""The runner process assembled: metrics registry, sinks, plugin, leadership, HTTP endpoints.

Everything long-lived is created here once and reused by every run (a registry recreated per
run would raise duplicate-timeseries errors and reset counters that alerts ``rate()`` over).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TextIO

from prometheus_client import CollectorRegistry, ProcessCollector

from runner.http_server import PortInUse, ProbeHTTPServer
from runner.leadership import Leadership
from runner.legrun import LegRunner, RunReport
from runner.loop import Runner, replica_name
from runner.signals.controller import SignalsPlugin
from runner.signals.metrics import LocationView, ProbeMetrics
from runner.signals.outcome import Outcome
from runner.signals.wiring import build_sinks, count_sink_error
from runner.status import StatusSnapshots, StatusSource
from runner.status_page import as_json, render
from synthetics.config import ProbeConfig
from synthetics.registry import LEGS

log = logging.getLogger("payment_probe.runner")


class StartupError(RuntimeError):
    """A configuration the runner cannot start with: exit 2, one line."""


class App:
    """Construct (no I/O), then ``start()`` (tables checked, leadership, the HTTP endpoints bound)."""

    def __init__(
        self, config: ProbeConfig, *, serve_http: bool = True,
        on_run: Callable[[RunReport], None] | None = None, clustered: bool = True,
        log_stream: TextIO | None = None, quiet_pytest: bool = True,
        first_run_grace_seconds: float | None = None,
    ) -> None:
        self.config = config
        self._serve_http = serve_http
        self._clustered = clustered
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.metrics = ProbeMetrics(self.registry, config.leg_timeout_seconds)
        self.metrics.enabled.set(1 if config.enabled else 0)
        self.metrics.confirm_retries.set(config.confirm_retries)
        if config.enabled:
            self.metrics.prime(config.intervals)
        self.http: ProbeHTTPServer | None = None
        from runner.signals.traces import Traces

        # None unless an OTLP endpoint is set: then the SDK is never imported (SPEC 16).
        self.traces = Traces.from_config(config.trace_export,
                                         on_error=lambda sink: self.metrics.sink_errors.labels(sink=sink).inc())
        plugin = SignalsPlugin(
            build_sinks(config, self.metrics, log_stream=log_stream),
            traces=self.traces,
            on_sink_error=count_sink_error(self.metrics),
            expected_legs=LEGS,
        )
        self.recent: list[Outcome] = []  # the latest run's outcomes: the status page's fallback
        self._user_on_run = on_run
        self.runner = Runner(config, self.metrics, LegRunner(config, plugin, quiet=quiet_pytest),
                             on_run=self._remember, first_run_grace_seconds=first_run_grace_seconds)
        self.status = StatusSnapshots(StatusSource(
            config.database_url if config.enabled else None, config.audit_table,
            config.intervals,
            recent=lambda: self.recent, environment=config.environment,
            window=lambda: self.runner.maintenance_window if self.runner.maintenance_open else None,
        ))

    def start(self) -> App:
        """Check the tables (exit 2 on what a retry cannot fix), take part in leadership, serve HTTP."""
        config = self.config
        if config.enabled and config.database_url:
            self._migrate()
            if self._clustered:
                self.runner.leadership = Leadership(config.database_url, replica_name(), config.location)
            from synthetics import db

            with db.one_detection():  # the location's latest runs, before the first scrape (runner.leghistory)
                self.runner.follow()
        if self._serve_http:
            try:
                self.http = ProbeHTTPServer(config.metrics_host, config.metrics_port,
                                            LocationView(self.registry, config.location),
                                            self.runner.health, extra_routes={
                                                "/status": self._status_html, "/status.json": self._status_json})
            except PortInUse as exc:
                raise StartupError(
                    f"PAYMENT_PROBE_METRICS_PORT: port {config.metrics_port} on "
                    f"{config.metrics_host} is not available ({exc.strerror or exc})"
                ) from None
            self.http.start()
            log.info("serving /metrics, /healthz and /status on http://%s:%d", config.metrics_host, self.http.port)
        return self

    def _remember(self, report: RunReport) -> None:
        self.recent = list(report.outcomes)
        if self._user_on_run is not None:
            self._user_on_run(report)

    def _status_html(self) -> tuple[int, bytes, str]:
        return 200, render(self.status.get()).encode(), "text/html; charset=utf-8"

    def _status_json(self) -> tuple[int, bytes, str]:
        return 200, as_json(self.status.get()), "application/json"

    def _migrate(self) -> None:
        from runner.audit_store import AuditSchemaError
        from runner.leadership import SlotsTableError
        from runner.schema import prepare
        from synthetics import db

        assert self.config.database_url
        try:
            prepare(self.config.database_url, self.config.audit_table)
        except (AuditSchemaError, SlotsTableError) as exc:
            raise StartupError(str(exc)) from None
        except Exception as exc:
            if db.is_permanent(exc):  # a retry cannot fix it: say so now, not every slot forever
                raise StartupError(f"PAYMENT_PROBE_DATABASE_URL: {db.describe(exc)}") from None
            # The prober's own dependency is down: probe anyway, spool audit rows until it returns.
            log.error("audit table check failed at start (%s); rows will be spooled until it works",
                      type(exc).__name__)

    def run_once(self) -> RunReport:
        return self.runner.run_once()

    def run_forever(self) -> None:
        self.runner.install_signal_handlers()
        try:
            if not self.config.enabled:
                self.runner.serve_disabled()
            else:
                self.runner.run_forever()
        finally:
            self.close()
        log.info("payment-probe stopped after %d run(s)", self.runner.runs_done)

    def close(self) -> None:
        if self.runner.leadership is not None:
            self.runner.leadership.close()
        if self.traces is not None:
            self.traces.shutdown()  # bounded: a collector that hangs does not hold the exit
        if self.http is not None:
            self.http.stop()
            self.http = None

