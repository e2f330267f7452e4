"""The signals plugin for a plain pytest session (laptop, CI gate): fresh registry, env config."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, push_to_gateway

from runner.signals.metrics import LocationView, ProbeMetrics
from runner.signals.outcome import Outcome
from runner.signals.plugin import SignalsPlugin
from runner.signals.wiring import build_sinks, count_sink_error
from synthetics import wire
from synthetics.plugin import CONFIG_KEY

log = logging.getLogger("payment_probe.signals")


def bounded_push(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
                 data: bytes) -> Callable[[], None]:
    """prometheus-client's push through ``synthetics.wire``: one 5 s budget for the whole
    exchange (a trickling gateway cannot hold the run) and no redirect ever followed."""

    def push() -> None:
        context = ssl.create_default_context() if url.startswith("https://") else None
        try:
            resp = wire.exchange(method, url, headers=dict(headers), body=data, timeout=timeout or 5.0,
                                 context=context, max_body=64 * 1024)
        except wire.WireError as exc:
            raise OSError(f"Pushgateway push failed: {exc.kind}") from None
        if not 200 <= resp.status < 300:
            raise OSError(f"Pushgateway push failed: HTTP {resp.status}")

    return push


def build_session_plugin(config: pytest.Config) -> SignalsPlugin:
    probe_config = config.stash[CONFIG_KEY]
    metrics = ProbeMetrics(CollectorRegistry(), probe_config.leg_timeout_seconds)
    metrics.enabled.set(1)
    metrics.prime(probe_config.intervals)
    gateway = config.option.probe_pushgateway
    after: Callable[[list[Outcome]], None] | None = None
    if gateway:
        environment = probe_config.environment or "unknown"

        def after(_outcomes: list[Outcome]) -> None:
            metrics.last_run.set_to_current_time()
            push_to_gateway(
                gateway, job="payment-probe",
                registry=LocationView(metrics.registry, probe_config.location),
                grouping_key={"environment": environment}, timeout=5, handler=bounded_push,
            )

    log_path = config.option.probe_log
    log_stream = open(log_path, "a") if log_path else None  # noqa: SIM115 - lives as long as the session
    if log_stream is not None:
        config.add_cleanup(log_stream.close)
    from runner.extras import MissingExtra
    from runner.signals.traces import Traces

    try:
        traces = Traces.from_env(on_error=lambda sink: metrics.sink_errors.labels(sink=sink).inc())
    except MissingExtra as exc:
        raise pytest.UsageError(str(exc)) from None
    if traces is not None:  # a CI gate's run appears in the team's tracing backend too
        config.add_cleanup(traces.shutdown)
    return SignalsPlugin(
        build_sinks(probe_config, metrics, log_stream=log_stream, log_via_logging=True),
        traces=traces,
        on_sink_error=count_sink_error(metrics),
        json_path=config.option.probe_json,
        after_flush=after,
        summary=True,
        fail_on_degraded=config.option.probe_fail_on == "degraded",
    )
