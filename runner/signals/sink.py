"""The contract every signal sink keeps, and the in-memory double unit tests use.

A sink takes outcomes and delivers them; it knows nothing of pytest. ``record`` is called
once per outcome as it is decided, ``attempt`` once per attempt (a confirmed leg's retried
attempts, then its outcome: the metrics count them, SPEC 15), ``flush`` once per run with all
the outcomes (for sinks that batch: the audit table, the event API, the Pushgateway).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from runner.signals.outcome import Outcome


@runtime_checkable
class OutcomeSink(Protocol):
    name: str

    def record(self, outcome: Outcome) -> None: ...

    def attempt(self, attempt: Outcome) -> None: ...

    def flush(self, outcomes: Sequence[Outcome]) -> None: ...


class MemorySink:
    """Keeps what it is given; ``fail_with`` makes it raise, to prove isolation of sinks."""

    def __init__(self, name: str = "memory", fail_with: BaseException | None = None) -> None:
        self.name = name
        self.recorded: list[Outcome] = []
        self.attempts: list[Outcome] = []
        self.flushed: list[list[Outcome]] = []
        self.fail_with = fail_with

    def record(self, outcome: Outcome) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.recorded.append(outcome)

    def attempt(self, attempt: Outcome) -> None:
        self.attempts.append(attempt)

    def flush(self, outcomes: Sequence[Outcome]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.flushed.append(list(outcomes))
