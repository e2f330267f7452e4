"""HTTP plumbing shared by every leg: identifying headers, no redirects, a bounded read, phases.

Every exchange runs on ``synthetics.wire`` under one deadline of
``PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS`` (connect, status line, headers and body together), with
the billing API's TLS settings, and reports its per-phase network time to the leg's record;
a transport problem becomes ``LegFailed`` with its reason (``timeout``, ``tls_error:expired``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from synthetics import __version__, reasons, tracing, wire
from synthetics.config import ProbeConfig
from synthetics.failures import LegFailed
from synthetics.tls import api_context

MAX_BODY_BYTES = 1024 * 1024
USER_AGENT = f"payment-probe/{__version__}"

PhaseListener = Callable[[Mapping[str, float], bool], None]
"""Told each exchange's phases and whether a response (its first byte) arrived."""


@dataclass(frozen=True)
class ProbeResponse:
    status: int
    body: bytes
    headers: Mapping[str, str]  # lower-case names
    elapsed_seconds: float  # the sum of the exchange's phases

    def json(self) -> Any:
        """The parsed body, or ``LegFailed('not_json')``: an HTML 200 is the classic false pass."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise LegFailed(reasons.NOT_JSON, f"HTTP {self.status} body is not JSON ({type(exc).__name__})") from None


class ProbeClient:
    """Sends the probe's headers; the bearer token and any signature are added at send time only."""

    def __init__(self, config: ProbeConfig, on_phases: PhaseListener | None = None,
                 spans: tracing.LegSpans | None = None) -> None:
        if not config.base_url:
            raise ValueError("ProbeClient needs a base URL")
        self.base_url = config.base_url
        self.timeout = config.http_timeout_seconds
        self._token = config.api_token
        self._on_phases = on_phases
        self._spans = spans  # the running leg's spans: its exchanges are their children (SPEC 16)
        self._context = (
            api_context(config.ca_bundle, config.client_cert, config.client_key)
            if self.base_url.startswith("https://") else None
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        sign: Callable[[], Mapping[str, str]] | None = None,
        on_status: Callable[[int], None] | None = None,
    ) -> ProbeResponse:
        """One exchange. ``sign`` gives the signature headers, called here at send time so a
        signature never sits in a leg's locals or a report.

        ``on_status`` judges the status line the moment it arrives (status before body): what it
        raises ends the leg whatever the body then does (undecodable, too large, trickled).
        """
        send = {
            "User-Agent": USER_AGENT,
            "X-Synthetic-Probe": "payment-probe",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            **(headers or {}),
        }
        if body is not None:
            send.setdefault("Content-Type", "application/json")
        what = f"{method} {path}"
        span = self._spans.start_exchange(method, self.base_url + path) if self._spans is not None else None
        if span is not None:
            send.update(span.headers)
        statuses: list[int] = []

        def on_head(status: int, _headers: Mapping[str, str]) -> None:
            statuses.append(status)
            if on_status is not None:
                on_status(status)

        try:
            if self._token:
                send["Authorization"] = "Bearer " + self._token.reveal()
            if sign is not None:
                send.update(sign())
            response = wire.exchange(
                method, self.base_url + path, headers=send, body=body, timeout=self.timeout,
                context=self._context, max_body=MAX_BODY_BYTES, on_head=on_head,
            )
        except wire.HeadRejected as exc:
            self._report(exc.phases, True)
            self._end(span, statuses, exc.phases, getattr(exc.cause, "reason", "rejected"))
            raise exc.cause from None
        except wire.WireError as exc:
            self._report(exc.phases, exc.answered)
            self._end(span, statuses, exc.phases, exc.kind)
            raise LegFailed(exc.kind, f"{what}: {exc.detail}") from None
        finally:
            send.clear()  # no header value (token, signature) outlives the exchange, on any path
        self._report(response.phases, True)
        self._end(span, [response.status], response.phases, None)
        return ProbeResponse(response.status, response.body, response.headers, sum(response.phases.values()))

    @staticmethod
    def _end(span: tracing.ExchangeSpan | None, statuses: list[int], phases: Mapping[str, float],
             error: str | None) -> None:
        if span is not None:
            span.finish(statuses[-1] if statuses else None, phases, error)

    def _report(self, phases: Mapping[str, float], answered: bool) -> None:
        if self._on_phases is not None:
            self._on_phases(phases, answered)
