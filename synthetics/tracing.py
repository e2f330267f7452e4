"""Where the probe's HTTP exchanges meet tracing, without importing OpenTelemetry (SPEC section 16).

The legs' client asks its run's ``LegSpans`` for a span around each exchange; with tracing off (no
OTLP endpoint) that is ``None`` and nothing else happens — no SDK import, no cost. Whoever traces
the leg (the signals plugin on the controller, or in each xdist worker) installs a factory while the
leg runs, so the client never knows about sinks or the SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol


class ExchangeSpan(Protocol):
    @property
    def headers(self) -> Mapping[str, str]:
        """traceparent and tracestate, to send with the request."""
        ...

    def finish(self, status: int | None, phases: Mapping[str, float], error: str | None) -> None:
        """End the span: the response status (None: no response), the phases, the failure's reason."""
        ...


ExchangeFactory = Callable[[str, str], ExchangeSpan]


class LegSpans:
    """The running leg's span factory and trace id: set while a leg attempt runs, in the process
    that runs it, and read by its HTTP client and by the hook that stamps its report."""

    def __init__(self) -> None:
        self._factory: ExchangeFactory | None = None
        self._trace_id: str | None = None

    def install(self, factory: ExchangeFactory, trace_id: str) -> None:
        """While a leg runs: its exchanges become child spans of the leg's span ``trace_id``."""
        self._factory, self._trace_id = factory, trace_id

    def uninstall(self) -> None:
        self._factory, self._trace_id = None, None

    def start_exchange(self, method: str, url: str) -> ExchangeSpan | None:
        return None if self._factory is None else self._factory(method, url)

    @property
    def trace_id(self) -> str | None:
        """The running leg's trace id (32 hex), carried by its outcome to every signal."""
        return self._trace_id
