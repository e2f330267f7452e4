"""Failures confirmed inside the run (SPEC 15): a failed leg runs again before it is reported ``fail``.

With pytest's own rerun plugin (pytest-rerunfailures), not a loop of ours: each leg gets a
``flaky`` marker with the configured retries and a condition of ours that decides, once per failed
attempt, whether another is made. Each earlier attempt reaches the signals plugin as a ``rerun``
report, so every attempt is counted and the outcome says how many there were. A degraded leg (a
skip) is never retried; neither is anything under plain pytest, unless ``--reruns`` asks.

The condition refuses a retry when
- the attempt ended ``critical`` (a gate that let a forgery through once is a breach, not a blip:
  it is the outcome at once, and it pages);
- the process was asked to stop (SIGTERM: no attempt starts after the signal);
- the retry, then every leg still to run as long as it took in its latest run (before any: its
  latency budget), and the sinks' flush would not end inside the interval of each of those legs
  (SPEC 15, 18: confirmation fits inside the leg's own interval, and no later leg is pushed past
  its own). The retry is counted as long as the attempt it confirms took, at least the leg's latency
  budget and at most its worst (its exchanges at the HTTP timeout each, never more than the leg
  timeout): an attempt that timed out is confirmed only where another timeout fits, one refused in
  50 ms wherever a quick one does. Counting every retry and every later leg at its worst would leave
  no retry at all at a 60 s tick (the four HTTP legs' worst alone is 94 s at the defaults), and every
  blip would page. At the defaults a fast-failing checkout_reachable (5 s budget) gets one retry,
  the other 60 s HTTP legs (2 s) both, 15 s apart.

The delay between attempts is waited here, on the stop event, instead of rerunfailures' own
``time.sleep``: a SIGTERM during the delay ends it at once instead of waiting it out.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

import pytest

from synthetics.failures import is_critical
from synthetics.registry import leg_for_test

CRITICAL_KEY = pytest.StashKey[bool]()  # this attempt ended critical
FAILED_KEY = pytest.StashKey[bool]()  # this attempt failed in some phase
DECIDED_KEY = pytest.StashKey[tuple[int, bool]]()  # (attempt, retry?) decided once per attempt
STARTED_KEY = pytest.StashKey[float]()  # wall time this attempt's setup began


class Confirmation:
    def __init__(self, retries: int, delay_seconds: float, worst_seconds: Callable[[str], float],
                 deadline: Callable[[str], float], stop: threading.Event | None = None,
                 tail_seconds: float = 0.0, took: dict[str, float] | None = None,
                 budget_seconds: Callable[[str], float] | None = None) -> None:
        self.retries = retries
        self.delay_seconds = delay_seconds
        self.worst_seconds = worst_seconds  # a leg's worst attempt (synthetics.registry.worst_case_seconds)
        self.deadline = deadline  # wall time the leg's interval ends (its slot start + its interval)
        # How long each leg's latest run took, all attempts (the runner keeps it across runs; filled here).
        self.took = {} if took is None else took
        self.budget_seconds = budget_seconds or worst_seconds  # a leg never run yet: its latency budget
        self.stop = stop or threading.Event()
        self.tail_seconds = tail_seconds  # after the last leg: the sinks' flush budgets

    def expected_seconds(self, leg: str) -> float:
        return self.took.get(leg, self.budget_seconds(leg))

    def retry_seconds(self, leg: str, attempt_seconds: float) -> float:
        """What a retry is counted as: the attempt it confirms, at least the leg's budget, at most its worst."""
        return min(self.worst_seconds(leg), max(attempt_seconds, self.budget_seconds(leg)))

    def room_for_another(self, leg: str, legs_after: Sequence[str] = (), attempt_seconds: float | None = None) -> bool:
        """A retry is made only if it, each later leg (as it last took) and the flush end before the interval
        of each of them does. Without the attempt's length, the retry is counted at its worst."""
        retry = self.worst_seconds(leg) if attempt_seconds is None else self.retry_seconds(leg, attempt_seconds)
        at = time.time() + self.delay_seconds + retry
        if at + self.tail_seconds > self.deadline(leg):
            return False
        for later in legs_after:
            at += self.expected_seconds(later)
            if at + self.tail_seconds > self.deadline(later):
                return False
        return True

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, None]:
        """How long the leg took this run, its retries included: what the next run counts it as."""
        started = time.monotonic()
        yield
        leg = leg_for_test(getattr(item, "originalname", item.name))
        if leg is not None:
            self.took[leg.name] = time.monotonic() - started

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        # The runner's sessions leave pytest's debugging plugin out; the rerun plugin reads its option.
        if not hasattr(config.option, "usepdb"):
            config.option.usepdb = False

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """After deselection (``-k``, ``-m``, the tick's legs): each leg knows which legs still follow it."""
        legs = [(item, leg.name) for item in session.items
                if (leg := leg_for_test(getattr(item, "originalname", item.name))) is not None]
        names = [name for _item, name in legs]
        for index, (item, name) in enumerate(legs):
            condition = functools.partial(self._retry, item, name, tuple(names[index + 1:]))
            item.add_marker(pytest.mark.flaky(reruns=self.retries, reruns_delay=0, condition=condition))

    @pytest.hookimpl(hookwrapper=True, trylast=True)  # inner: rerunfailures' condition reads what it notes
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
        outcome = yield
        report = outcome.get_result()
        if call.when == "setup":
            item.stash[CRITICAL_KEY] = False
            item.stash[FAILED_KEY] = False
            item.stash[STARTED_KEY] = call.start
        if report.failed:
            item.stash[FAILED_KEY] = True
            if call.excinfo is not None and is_critical(call.excinfo.value):
                item.stash[CRITICAL_KEY] = True

    def _retry(self, item: pytest.Item, leg: str, legs_after: tuple[str, ...], _error: BaseException | None) -> bool:
        """rerunfailures' condition, asked per failed phase: decided once per attempt."""
        attempt = int(getattr(item, "execution_count", 1))
        decided = item.stash.get(DECIDED_KEY, None)
        if decided is not None and decided[0] == attempt:
            return decided[1]
        retry = self._decide(item, leg, legs_after)
        item.stash[DECIDED_KEY] = (attempt, retry)
        return retry

    def _decide(self, item: pytest.Item, leg: str, legs_after: tuple[str, ...]) -> bool:
        if not item.stash.get(FAILED_KEY, False):
            return False  # asked for a passing attempt too: nothing to confirm
        if item.stash.get(CRITICAL_KEY, False) or self.stop.is_set():
            return False
        attempt_seconds = time.time() - item.stash.get(STARTED_KEY, time.time())
        if not self.room_for_another(leg, legs_after, attempt_seconds):
            return False
        # No leg timer may fire during the wait: the attempt is over (its own timer ends with it).
        item.ihook.pytest_timeout_cancel_timer(item=item)
        return not self.stop.wait(self.delay_seconds)


class StopAfterSignal:
    """SIGTERM finishes the current attempt and starts no other: the session stops after that leg,
    and a leg not yet begun is not begun (it gets no outcome: it did not run, it did not fail)."""

    REASON = "stop requested (SIGTERM): no further leg starts"

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self._session: pytest.Session | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._session = session

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        if self.stop.is_set():  # the signal came before this leg began: it is not begun
            item.session.shouldstop = self.REASON
            return True
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """After the attempt running when the signal came (its teardown, the reap, included)."""
        if self.stop.is_set() and report.when == "teardown" and self._session is not None:
            self._session.shouldstop = self.REASON
