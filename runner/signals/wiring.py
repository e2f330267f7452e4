"""Which sinks a session gets, decided from the config in one place for runner and laptop alike."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from runner.signals.audit import AuditSink
from runner.signals.events import EventSink, endpoint_for
from runner.signals.logsink import LogSink
from runner.signals.metrics import MetricsSink, ProbeMetrics
from runner.signals.sink import OutcomeSink
from synthetics.config import ProbeConfig, default_spool_dir

log = logging.getLogger("payment_probe.signals")


def spool_path(config: ProbeConfig) -> Path:
    """The spool file; the directory was resolved with the rest of the settings (load_config)."""
    base = config.spool_dir or default_spool_dir(os.environ)  # a config built in code may leave it unset
    return Path(base) / f"audit-{config.audit_table}.jsonl"


def events_url(config: ProbeConfig) -> str | None:
    if config.events_url:
        return config.events_url
    if config.new_relic_account_id and config.new_relic_insert_key:
        return endpoint_for(config.new_relic_account_id, config.new_relic_region)
    return None


def count_sink_error(metrics: ProbeMetrics) -> Callable[[str, BaseException], None]:
    def on_error(sink: str, _exc: BaseException) -> None:
        metrics.sink_errors.labels(sink=sink).inc()

    return on_error


def build_sinks(
    config: ProbeConfig, metrics: ProbeMetrics, *, log_stream: TextIO | None = None,
    log_via_logging: bool = False,
) -> list[OutcomeSink]:
    sinks: list[OutcomeSink] = [MetricsSink(metrics), LogSink(log_stream, via_logging=log_via_logging)]
    if config.database_url:
        sinks.append(
            AuditSink(
                config.database_url, config.audit_table, spool_path(config),
                on_error=lambda name: metrics.sink_errors.labels(sink=name).inc(),
                on_dropped=metrics.audit_rows_dropped.inc,
            )
        )
    url = events_url(config)
    if url:
        sinks.append(EventSink(url, config.new_relic_insert_key))
    return sinks
