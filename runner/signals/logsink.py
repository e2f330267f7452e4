"""One JSON line per outcome on stderr: INFO pass/degraded, ERROR fail, CRITICAL critical."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from runner.signals.outcome import Outcome

OUTCOME_LOG = logging.getLogger("payment_probe.outcome")


def level_of(outcome: Outcome) -> str:
    if outcome.severity == "critical":
        return "CRITICAL"
    return "ERROR" if outcome.result == "fail" else "INFO"


def outcome_line(outcome: Outcome) -> str:
    return json.dumps(
        {
            "timestamp": outcome.timestamp_iso,
            "level": level_of(outcome),
            "logger": "payment_probe.outcome",
            "msg": f"{outcome.leg} {outcome.result} ({outcome.reason})",
            "leg": outcome.leg,
            "result": outcome.result,
            "severity": outcome.severity,
            "reason": outcome.reason,
            "latency_seconds": outcome.latency_seconds,
            "run_id": outcome.run_id,
            "environment": outcome.environment,
            "detail": outcome.detail,
            "maintenance": outcome.maintenance,
            "location": outcome.location,
            "attempts": outcome.attempts,
            "recovered_from": outcome.recovered_from,
            "id": outcome.id,  # the audit row's id: a log line joins its row
            "trace_id": outcome.trace_id,
        },
        separators=(",", ":"),
    )


class LogSink:
    """The runner writes raw lines to stderr (or a stream); under plain pytest (``via_logging``)
    they go through Python logging, so pytest's capture owns them: shown with failures or live
    with ``--log-cli-level``, never interleaved with the progress line."""

    name = "log"

    def __init__(self, stream: TextIO | None = None, *, via_logging: bool = False) -> None:
        self._stream = stream  # None: whatever sys.stderr is at write time
        self._via_logging = via_logging

    def attempt(self, attempt: Outcome) -> None:
        """Attempts are the metrics' to count; this sink keeps outcomes."""

    def record(self, outcome: Outcome) -> None:
        line = outcome_line(outcome)
        if self._via_logging and self._stream is None:
            OUTCOME_LOG.log(logging.getLevelName(level_of(outcome)), line)
            return
        stream = self._stream or sys.stderr
        stream.write(line + "\n")
        stream.flush()

    def flush(self, outcomes: Sequence[Outcome]) -> None:
        pass
