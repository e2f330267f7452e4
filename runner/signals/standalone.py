"""The signals controller for a plain pytest session (laptop, CI gate): fresh registry, env config."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from runner.signals.controller import SignalsPlugin
from runner.signals.metrics import ProbeMetrics
from runner.signals.pushgateway import PushgatewaySink
from runner.signals.wiring import build_sinks, count_sink_error
from synthetics.plugin import CONFIG_KEY

log = logging.getLogger("payment_probe.signals")


def build_session_plugin(config: pytest.Config) -> SignalsPlugin:
    probe_config = config.stash[CONFIG_KEY]
    metrics = ProbeMetrics(CollectorRegistry(), probe_config.leg_timeout_seconds)
    metrics.enabled.set(1)
    metrics.prime(probe_config.intervals)
    log_path = config.option.probe_log
    log_stream = open(log_path, "a") if log_path else None  # noqa: SIM115 - lives as long as the session
    if log_stream is not None:
        config.add_cleanup(log_stream.close)
    sinks = build_sinks(probe_config, metrics, log_stream=log_stream, log_via_logging=True)
    if config.option.probe_pushgateway:  # after the metrics sink: the push carries this run's counts
        sinks.append(PushgatewaySink(config.option.probe_pushgateway, metrics, location=probe_config.location,
                                     environment=probe_config.environment))
    from runner.extras import MissingExtra
    from runner.signals.traces import Traces

    try:
        traces = Traces.from_config(probe_config.trace_export,
                                    on_error=lambda sink: metrics.sink_errors.labels(sink=sink).inc())
    except MissingExtra as exc:
        raise pytest.UsageError(str(exc)) from None
    if traces is not None:  # a CI gate's run appears in the team's tracing backend too
        config.add_cleanup(traces.shutdown)
    return SignalsPlugin(
        sinks,
        traces=traces,
        on_sink_error=count_sink_error(metrics),
        json_path=config.option.probe_json,
        summary=True,
        fail_on_degraded=config.option.probe_fail_on == "degraded",
    )
