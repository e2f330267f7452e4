"""The outcome table: the demo prints it per run, a laptop or CI run prints it as pytest's summary."""

from __future__ import annotations

from collections.abc import Sequence

from runner.signals.outcome import Outcome

MARKS = {"pass": "ok  ", "degraded": "WARN", "fail": "FAIL"}
HEADER = f"        {'leg':<22} {'result':<9} {'severity':<9} {'latency':>9}  reason"


def outcome_row(outcome: Outcome) -> str:
    latency = "-" if outcome.latency_seconds is None else f"{outcome.latency_seconds * 1000:.1f} ms"
    return (f"  {MARKS[outcome.result]}  {outcome.leg:<22} {outcome.result:<9} {outcome.severity:<9} "
            f"{latency:>9}  {outcome.reason}")


def outcome_table(outcomes: Sequence[Outcome]) -> list[str]:
    return [HEADER, *(outcome_row(o) for o in outcomes)]
