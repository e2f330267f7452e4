"""Failures confirmed inside the run (SPEC 15): a failed leg runs again before it is reported ``fail``.

With pytest's own rerun plugin (pytest-rerunfailures), not a loop of ours: each leg gets a
``flaky`` marker with the configured retries and delay, and a condition that refuses a retry which
would push the run past its slot. Each earlier attempt reaches the signals plugin as a ``rerun``
report, so every attempt is counted and the outcome says how many there were. A degraded leg (a
skip) is never retried; neither is anything under plain pytest, unless ``--reruns`` asks.
"""

from __future__ import annotations

import time

import pytest

from synthetics.registry import leg_for_test


class Confirmation:
    def __init__(self, retries: int, delay_seconds: float, attempt_seconds: float, deadline: float) -> None:
        self.retries = retries
        self.delay_seconds = delay_seconds
        self.attempt_seconds = attempt_seconds  # a retry's worst case: the leg timeout
        self.deadline = deadline  # wall time the slot ends

    def room_for_another(self) -> bool:
        """A retry is made only if it ends, at worst, before the slot does."""
        return time.time() + self.delay_seconds + self.attempt_seconds <= self.deadline

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        # The runner's sessions leave pytest's debugging plugin out; the rerun plugin reads its option.
        if not hasattr(config.option, "usepdb"):
            config.option.usepdb = False

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            if leg_for_test(getattr(item, "originalname", item.name)) is not None:
                item.add_marker(pytest.mark.flaky(reruns=self.retries, reruns_delay=self.delay_seconds,
                                                  condition=self.room_for_another))
