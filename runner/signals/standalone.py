"""The signals plugin for a plain pytest session (laptop, CI gate): fresh registry, env config."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, push_to_gateway

from runner.signals.metrics import ProbeMetrics
from runner.signals.outcome import Outcome
from runner.signals.plugin import SignalsPlugin
from runner.signals.wiring import build_sinks, count_sink_error
from synthetics.plugin import CONFIG_KEY

log = logging.getLogger("payment_probe.signals")


def build_session_plugin(config: pytest.Config) -> SignalsPlugin:
    probe_config = config.stash[CONFIG_KEY]
    metrics = ProbeMetrics(CollectorRegistry(), probe_config.leg_timeout_seconds)
    metrics.enabled.set(1)
    metrics.prime()
    gateway = config.option.probe_pushgateway
    after: Callable[[list[Outcome]], None] | None = None
    if gateway:
        environment = probe_config.environment or "unknown"

        def after(_outcomes: list[Outcome]) -> None:
            metrics.last_run.set_to_current_time()
            push_to_gateway(
                gateway, job="payment-probe", registry=metrics.registry,
                grouping_key={"environment": environment}, timeout=5,
            )

    return SignalsPlugin(
        build_sinks(probe_config, metrics),
        on_sink_error=count_sink_error(metrics),
        json_path=config.option.probe_json,
        after_flush=after,
    )
