"""Prometheus metrics: created once per process on a registry that is passed in.

A second pytest session in the same process reuses the same ``ProbeMetrics``: creating the
collectors again on one registry would raise a duplicate-timeseries error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

from runner.signals.outcome import Outcome
from synthetics.registry import LEGS, RESULTS
from synthetics.wire import PHASES

if TYPE_CHECKING:
    from runner.leghistory import LegHistory

_WITH_CREATED = ("counter", "histogram", "summary")
SINK_NAMES = ("metrics", "audit", "events", "log", "json", "traces", "pushgateway")
_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)


def latency_buckets(leg_timeout_seconds: float) -> tuple[float, ...]:
    """HTTP-shaped buckets, cut at the leg timeout (which is always the last finite bucket)."""
    inside = [b for b in _BUCKETS if b < leg_timeout_seconds]
    return (*inside, float(leg_timeout_seconds))


class ProbeMetrics:
    """Every metric SPEC section 4 names, plus the runner's own health counters."""

    def __init__(self, registry: CollectorRegistry, leg_timeout_seconds: float = 60.0) -> None:
        self.registry = registry
        self.outcomes = Counter(
            "instant_payment_probe_outcome", "Leg outcomes by leg and result.",
            ["leg", "result"], registry=registry,
        )
        self.latency = Histogram(
            "instant_payment_probe_latency_seconds",
            "The leg's own network time, observed when the leg got a response.",
            ["leg"], registry=registry, buckets=latency_buckets(leg_timeout_seconds),
        )
        self.enabled = Gauge(
            "instant_payment_probe_enabled", "1 when the prober is enabled, 0 when it is inert.",
            registry=registry,
        )
        self.last_run = Gauge(
            "instant_payment_probe_last_run_timestamp_seconds",
            "Unix time the last run that judged the legs finished (on the replica that ran it).",
            registry=registry,
        )
        self.run_duration = Gauge(
            "instant_payment_probe_run_duration_seconds", "Wall time of the last run of the legs.",
            registry=registry,
        )
        self.sink_errors = Counter(
            "instant_payment_probe_sink_errors", "Failed deliveries by signal sink.",
            ["sink"], registry=registry,
        )
        self.runs = Counter(
            "instant_payment_probe_runs", "Runs of the legs on this replica that judged at least one leg.",
            registry=registry,
        )
        self.run_errors = Counter(
            "instant_payment_probe_run_errors",
            "Runs that crashed outside the legs (pytest, a sink, the reaper); the loop went on.",
            registry=registry,
        )
        self.cohort_reaped = Counter(
            "instant_payment_probe_cohort_teams_reaped",
            "Leftover cohort teams of killed runs removed by the sweep.",
            registry=registry,
        )
        self.phase = Gauge(
            "instant_payment_probe_phase_seconds",
            "The latest run's network time of the leg by phase (resolve, connect, tls, processing, transfer).",
            ["leg", "phase"], registry=registry,
        )
        self.cert_expiry = Gauge(
            "instant_payment_probe_tls_cert_expiry_timestamp_seconds",
            "The billing API's leaf certificate notAfter, unix seconds (latest tls_certificate run).",
            registry=registry,
        )
        self.maintenance = Gauge(
            "instant_payment_probe_maintenance", "1 while a maintenance window is open, else 0.",
            registry=registry,
        )
        self.audit_rows_dropped = Counter(
            "instant_payment_probe_audit_rows_dropped",
            "Audit rows dropped at the spool's bound while the database was unreachable.",
            registry=registry,
        )
        self.critical = Counter(
            "instant_payment_probe_critical",
            "Outcomes of severity critical by leg (a forgery, a stale or replayed delivery accepted).",
            ["leg"], registry=registry,
        )
        self.attempts = Counter(
            "instant_payment_probe_attempts",
            "Every attempt of a leg, retries the confirmation made included, by its own result.",
            ["leg", "result"], registry=registry,
        )
        self.confirm_retries = Gauge(
            "instant_payment_probe_confirm_retries",
            "PAYMENT_PROBE_CONFIRM_RETRIES: how many more times the runner runs a failed leg (0: off).",
            registry=registry,
        )
        self.leg_reason = Gauge(
            "instant_payment_probe_leg_reason_info",
            "1 for the reason of each leg's latest outcome (the earlier reason's series removed): what an "
            "alert's summary names. The reason vocabulary is closed and capped, so the series are bounded.",
            ["leg", "reason"], registry=registry,
        )
        # Cadence (SPEC 18) and each leg's latest runs in this location (runner.leghistory): what the
        # alert rules read, so that their windows follow each leg's own interval.
        self.leg_interval = Gauge(
            "instant_payment_probe_leg_interval_seconds", "The leg's configured interval (SPEC 18).",
            ["leg"], registry=registry,
        )
        self.leg_last_run = Gauge(
            "instant_payment_probe_leg_last_run_timestamp_seconds",
            "Unix time the leg's latest run in this location finished (0: none known).",
            ["leg"], registry=registry,
        )
        self.leg_latest_failed = Gauge(
            "instant_payment_probe_leg_latest_failed",
            "1 when the leg's latest run in this location failed, outside a maintenance window.",
            ["leg"], registry=registry,
        )
        self.leg_latest_critical = Gauge(
            "instant_payment_probe_leg_latest_critical",
            "1 when the leg's latest run in this location ended critical, outside a maintenance window.",
            ["leg"], registry=registry,
        )
        self.leg_recent_failures = Gauge(
            "instant_payment_probe_leg_recent_failures",
            "How many of the leg's latest 3 runs in this location failed, outside maintenance windows.",
            ["leg"], registry=registry,
        )
        self.enabled_since: Gauge | None = None  # created by prime()
        self.provider_undelivered = Gauge(
            "instant_payment_probe_provider_undelivered_events",
            "Events the payment provider has not delivered to the webhook endpoint (latest provider_webhook_health).",
            registry=registry,
        )
        self.provider_oldest_undelivered = Gauge(
            "instant_payment_probe_provider_oldest_undelivered_seconds",
            "Age of the oldest of them, seconds (0: none).",
            registry=registry,
        )
        self.history: LegHistory | None = None  # created by prime(): the selected legs' latest runs
        self._latest_reason: dict[str, str] = {}
        for sink in SINK_NAMES:
            self.sink_errors.labels(sink=sink)

    def set_reason(self, leg: str, reason: str) -> None:
        """One series per leg: its latest outcome's reason."""
        earlier = self._latest_reason.get(leg)
        if earlier is not None and earlier != reason:
            with contextlib.suppress(KeyError):  # already gone
                self.leg_reason.remove(leg, earlier)
        self.leg_reason.labels(leg=leg, reason=reason).set(1)
        self._latest_reason[leg] = reason

    def prime(self, intervals: Mapping[str, float] | None = None) -> None:
        """Create every selected leg's series (leg x result at 0, its interval), so ``rate()`` and alerts
        work from the first scrape. ``intervals``: each selected leg's interval (default: every leg's default)."""
        from runner.leghistory import LegHistory

        if intervals is None:
            intervals = {name: leg.interval_seconds for name, leg in LEGS.items()}
        self.history = LegHistory(self, list(intervals))
        if self.enabled_since is None:  # only an enabled process exports it (prime is called once enabled)
            self.enabled_since = Gauge(
                "instant_payment_probe_enabled_since_timestamp_seconds",
                "Unix time this enabled process started: how long a location that never ran has been enabled.",
                registry=self.registry,
            )
            self.enabled_since.set_to_current_time()
        for leg, seconds in intervals.items():
            self.leg_interval.labels(leg=leg).set(seconds)
            self.leg_last_run.labels(leg=leg)
            self.leg_latest_failed.labels(leg=leg)
            self.leg_latest_critical.labels(leg=leg)
            self.leg_recent_failures.labels(leg=leg)
            self.latency.labels(leg=leg)
            self.critical.labels(leg=leg)
            for result in RESULTS:
                self.outcomes.labels(leg=leg, result=result)
                self.attempts.labels(leg=leg, result=result)
            for phase in PHASES:
                self.phase.labels(leg=leg, phase=phase)


class MetricsSink:
    name = "metrics"

    def __init__(self, metrics: ProbeMetrics) -> None:
        self.metrics = metrics

    def record(self, outcome: Outcome) -> None:
        self.metrics.outcomes.labels(leg=outcome.leg, result=outcome.result).inc()
        self.metrics.set_reason(outcome.leg, outcome.reason)
        if self.metrics.history is not None:
            self.metrics.history.record(outcome)
        if outcome.severity == "critical":
            self.metrics.critical.labels(leg=outcome.leg).inc()
        if outcome.latency_seconds is not None:
            self.metrics.latency.labels(leg=outcome.leg).observe(outcome.latency_seconds)
        for phase, seconds in outcome.phases.items():
            if phase in PHASES:
                self.metrics.phase.labels(leg=outcome.leg, phase=phase).set(seconds)
        for key, gauge in (("undelivered_events", self.metrics.provider_undelivered),
                           ("oldest_undelivered_seconds", self.metrics.provider_oldest_undelivered)):
            figure = outcome.metadata.get(key)
            if outcome.leg == "provider_webhook_health" and isinstance(figure, int | float) \
                    and not isinstance(figure, bool):
                gauge.set(figure)
        not_after = outcome.metadata.get("cert_not_after")
        if isinstance(not_after, int | float) and not isinstance(not_after, bool):
            self.metrics.cert_expiry.set(not_after)

    def attempt(self, attempt: Outcome) -> None:
        """Every attempt, the last one included: a blip a retry cleared stays visible."""
        self.metrics.attempts.labels(leg=attempt.leg, result=attempt.result).inc()

    def flush(self, outcomes: Sequence[Outcome]) -> None:
        pass


class LocationView:
    """The registry as scraped: every ``instant_payment_probe_*`` sample labelled ``location`` (SPEC 15),
    without the ``*_created`` series.

    One label for the whole process, added where the samples leave (exposition, Pushgateway), so
    the metrics keep their own label names and every ``labels()`` call stays as it is. The
    ``*_created`` series would double the exposition and no alert or dashboard reads them; they are
    dropped here rather than by prometheus-client's process-wide switch, which would change every
    registry in a process that merely imports this module.
    """

    def __init__(self, registry: CollectorRegistry, location: str) -> None:
        self.registry = registry
        self.location = location

    def collect(self) -> Iterator[Metric]:
        for metric in self.registry.collect():
            ours = metric.name.startswith("instant_payment_probe_")
            shown = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            for sample in metric.samples:
                if metric.type in _WITH_CREATED and sample.name == metric.name + "_created":
                    continue
                shown.samples.append(sample._replace(labels={**sample.labels, "location": self.location})
                                     if ours else sample)
            yield shown
