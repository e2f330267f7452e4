"""One JSON line per outcome on stderr: INFO pass/degraded, ERROR fail, CRITICAL critical."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TextIO

from runner.signals.outcome import Outcome


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
        },
        separators=(",", ":"),
    )


class LogSink:
    name = "log"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream  # None: whatever sys.stderr is at write time

    def record(self, outcome: Outcome) -> None:
        stream = self._stream or sys.stderr
        stream.write(outcome_line(outcome) + "\n")
        stream.flush()

    def flush(self, outcomes: Sequence[Outcome]) -> None:
        pass
