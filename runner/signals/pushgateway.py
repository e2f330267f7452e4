"""The Pushgateway as a sink: a plain pytest session's metrics, pushed once at its end.

A laptop or CI gate has no ``/metrics`` for Prometheus to scrape, so ``--probe-pushgateway URL``
pushes the session's registry, under its location and environment, when the run flushes. A push
that fails is a sink error like any other (``sink="pushgateway"``), never the session's failure.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence

from prometheus_client import push_to_gateway

from runner.signals.metrics import LocationView, ProbeMetrics
from runner.signals.outcome import Outcome
from synthetics import wire

PUSH_SECONDS = 5.0  # SPEC 10: each sink POST ends within 5 s in total


def bounded_push(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
                 data: bytes) -> Callable[[], None]:
    """prometheus-client's push through ``synthetics.wire``: one 5 s budget for the whole
    exchange (a trickling gateway cannot hold the run) and no redirect ever followed."""

    def push() -> None:
        context = ssl.create_default_context() if url.startswith("https://") else None
        try:
            resp = wire.exchange(method, url, headers=dict(headers), body=data, timeout=timeout or PUSH_SECONDS,
                                 context=context, max_body=64 * 1024)
        except wire.WireError as exc:
            raise OSError(f"Pushgateway push failed: {exc.kind}") from None
        if not 200 <= resp.status < 300:
            raise OSError(f"Pushgateway push failed: HTTP {resp.status}")

    return push


class PushgatewaySink:
    name = "pushgateway"

    def __init__(self, url: str, metrics: ProbeMetrics, *, location: str, environment: str | None) -> None:
        self.url = url
        self.metrics = metrics
        self.location = location
        self.environment = environment or "unknown"

    def record(self, outcome: Outcome) -> None:
        """The metrics sink has counted it; the push carries the registry whole at the end."""

    def attempt(self, attempt: Outcome) -> None:
        """Counted by the metrics sink, pushed with the registry."""

    def flush(self, outcomes: Sequence[Outcome]) -> None:
        self.metrics.last_run.set_to_current_time()
        push_to_gateway(
            self.url, job="payment-probe", registry=LocationView(self.metrics.registry, self.location),
            grouping_key={"environment": self.environment}, timeout=PUSH_SECONDS, handler=bounded_push,
        )
