"""Where the probe's HTTP exchanges meet tracing, without importing OpenTelemetry (SPEC section 16).

The legs' client asks ``start_exchange`` for a span around each exchange; with tracing off (no
OTLP endpoint) that is ``None`` and nothing else happens — no SDK import, no cost. The signals
plugin installs a factory while a leg runs, so the client never knows about sinks or the SDK.
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


_factory: Callable[[str, str], ExchangeSpan] | None = None
_trace_id: str | None = None


def install(factory: Callable[[str, str], ExchangeSpan], trace_id: str) -> None:
    """While a leg runs: its exchanges become child spans of the leg's span ``trace_id``."""
    global _factory, _trace_id
    _factory, _trace_id = factory, trace_id


def uninstall() -> None:
    global _factory, _trace_id
    _factory, _trace_id = None, None


def start_exchange(method: str, url: str) -> ExchangeSpan | None:
    return None if _factory is None else _factory(method, url)


def current_trace_id() -> str | None:
    """The running leg's trace id (32 hex), carried by its outcome to every signal."""
    return _trace_id
