"""``InstantPaymentProbe`` custom events to the New Relic Event API: one gzip POST per run.

Bounded by one total budget (5 s: connect, send, status line, headers and body of every
attempt together, on a monotonic clock) with one retry on 408/429/5xx or a failed connection
(not on a timeout once the request was sent, which may mean the batch was taken). Redirects
are never followed: the key is sent to the configured host only. A failure raises
``SinkError`` for the plugin to count and log, never fails a leg.
"""

from __future__ import annotations

import gzip
import json
import ssl
import time
from collections.abc import Sequence
from typing import Any

from runner.signals.outcome import Outcome
from synthetics import __version__, wire
from synthetics.secret import Secret

US_ENDPOINT = "https://insights-collector.newrelic.com/v1/accounts/{account}/events"
EU_ENDPOINT = "https://insights-collector.eu01.nr-data.net/v1/accounts/{account}/events"
MAX_POST_BYTES = 1_000_000
RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


class SinkError(RuntimeError):
    """A delivery failed; the message is safe to log (no key, no URL credentials)."""


def endpoint_for(account_id: str, region: str) -> str:
    template = EU_ENDPOINT if region.upper() == "EU" else US_ENDPOINT
    return template.format(account=account_id)


def event_of(outcome: Outcome) -> dict[str, str | int | float]:
    """A flat event: string or number values only, integer ``timestamp`` in seconds."""
    event: dict[str, str | int | float] = {
        "eventType": "InstantPaymentProbe",
        "cohort": "synthetic",
        "leg": outcome.leg,
        "result": outcome.result,
        "severity": outcome.severity,
        "reason": outcome.reason,
        "run_id": outcome.run_id,
        "timestamp": int(outcome.timestamp),
        "probe_version": __version__,
        "outcome_id": outcome.id,
        "location": outcome.location,
        "attempts": outcome.attempts,
    }
    if outcome.recovered_from:
        event["recovered_from"] = outcome.recovered_from
    if outcome.latency_seconds is not None:
        event["latency_seconds"] = outcome.latency_seconds
    if outcome.environment:
        event["environment"] = outcome.environment
    if outcome.detail:
        event["detail"] = outcome.detail
    if outcome.maintenance:
        event["maintenance"] = "true"  # Event API values are strings or numbers
    if outcome.trace_id:
        event["trace.id"] = outcome.trace_id  # New Relic's own attribute: the event links to the trace
    for key, value in outcome.metadata.items():
        name = f"detail_{key}"
        if name not in event:
            event[name] = value if isinstance(value, int | float) and not isinstance(value, bool) else str(value)
    return event


def batches(events: list[dict[str, Any]]) -> list[bytes]:
    """Gzipped JSON arrays, each under the API's 1 MB per POST."""
    out: list[bytes] = []
    current: list[dict[str, Any]] = []
    for event in events:
        trial = [*current, event]
        if current and len(json.dumps(trial).encode()) > MAX_POST_BYTES:
            out.append(gzip.compress(json.dumps(current).encode()))
            trial = [event]
        current = trial
    if current:
        out.append(gzip.compress(json.dumps(current).encode()))
    return out


class EventSink:
    name = "events"

    def __init__(
        self, url: str, insert_key: Secret | None, *, budget_seconds: float = 5.0,
        attempt_timeout_seconds: float = 3.0,
    ) -> None:
        self.url = url
        self._key = insert_key
        self.budget_seconds = budget_seconds
        self.attempt_timeout_seconds = attempt_timeout_seconds
        # New Relic keeps the system trust store: the billing API's private CA is not for it.
        self._context = ssl.create_default_context() if url.startswith("https://") else None

    def attempt(self, attempt: Outcome) -> None:
        """Attempts are the metrics' to count; this sink keeps outcomes."""

    def record(self, outcome: Outcome) -> None:
        pass

    def flush(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        deadline = time.monotonic() + self.budget_seconds
        for body in batches([event_of(o) for o in outcomes]):
            self._post(body, deadline)

    def _post(self, body: bytes, deadline: float) -> None:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip",
                   "User-Agent": f"payment-probe/{__version__}"}
        if self._key:
            headers["Api-Key"] = self._key.reveal()
        problem = ""
        for attempt in range(2):
            remaining = deadline - time.monotonic()
            if remaining <= 0.05:
                break
            try:
                resp = wire.exchange("POST", self.url, headers=headers, body=body,
                                     timeout=min(self.attempt_timeout_seconds, remaining),
                                     context=self._context, max_body=64 * 1024)
            except wire.WireError as exc:
                problem = exc.kind
                if exc.kind == "timeout" and exc.phases.get("processing", 0.0) > 0:
                    break  # sent, unanswered: the API may have taken the batch, a retry could double it
            else:
                if 200 <= resp.status < 300:
                    return
                problem = f"HTTP {resp.status}"
                if 300 <= resp.status < 400:
                    problem += " (redirects are not followed)"
                if resp.status not in RETRY_STATUSES:
                    break
            if attempt == 0:
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        headers.clear()
        raise SinkError(f"event API delivery failed: {problem or 'time budget exhausted'}")
