"""One run of the legs: ``pytest.main`` in-process, from the main thread, with the signals plugin.

The main thread matters: pytest-timeout's signal method (SIGALRM) is what lets the upgrade
leg's reap run after a timeout, and signals are only delivered there.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

import synthetics
from runner.confirm import Confirmation, StopAfterSignal
from runner.signals.controller import SignalsPlugin
from runner.signals.outcome import Outcome
from synthetics import db
from synthetics.config import ProbeConfig
from synthetics.plugin import ProvidedConfig
from synthetics.registry import LEGS, slow_threshold, worst_case_seconds
from synthetics.run import RunContext

LEGS_DIR = str(Path(synthetics.__file__).parent)
MARK_EXPRESSION = "prod_safe or upgrade"
# After the last leg: the audit flush (one database detection at most per run), the event API's and
# the Pushgateway's 5 s budgets. A confirmation retry leaves room for them.
FLUSH_SECONDS = db.GUARD_SECONDS + 2 * 5.0

# Built-in and installed plugins the legs never use in the runner. Each costs registration and
# fixture parsing on every run (pytest is called afresh each slot); unraisableexception and
# threadexception also run gc.collect() twice per session on the runner's long-lived heap.
# A laptop's or CI's plain `pytest` keeps them all.
UNUSED_PLUGINS = (
    "cacheprovider", "stepwise", "warnings", "doctest", "junitxml", "pastebin", "legacypath", "tmpdir",
    "recwarn", "setuponly", "setupplan", "debugging", "unittest", "faulthandler", "unraisableexception",
    "threadexception", "subtests", "logging", "xdist", "xdist.looponfail", "platformdirs",
)


def installed_legs_args() -> list[str]:
    """pytest on the installed legs and nothing of the directory it runs in (the runner's and the gate's)."""
    return [
        LEGS_DIR,
        "--rootdir", LEGS_DIR,
        "-c", os.devnull,  # never pick up an ini of whatever directory we run in (its addopts, testpaths),
        "--confcutdir", LEGS_DIR,  # nor a conftest.py above the legs (a checkout's or an application's)
        "-p", "synthetics.plugin",
        "-p", "runner.signals.plugin",
        "--import-mode=importlib",
    ]


@dataclass(frozen=True)
class RunReport:
    run_id: str
    outcomes: list[Outcome]
    pytest_exit_code: int
    duration_seconds: float
    finished_at: float
    stopped: bool = False  # SIGTERM arrived during the run: the legs not begun have no outcome

    @property
    def failed(self) -> bool:
        return any(o.result == "fail" for o in self.outcomes)


@contextmanager
def stdout_redirected(quiet: bool) -> Iterator[None]:
    """pytest's terminal output goes nowhere (or to stderr), so ``--json`` owns stdout alone and
    stderr carries only JSON lines; the outcome lines say everything pytest's dots would."""
    sys.stdout.flush()
    saved = os.dup(1)
    target = os.open(os.devnull, os.O_WRONLY) if quiet else 2
    os.dup2(target, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        if quiet:
            os.close(target)


class LegRunner:
    """Owns the long-lived signals plugin; each ``run`` is one fresh pytest session."""

    def __init__(
        self, config: ProbeConfig, plugin: SignalsPlugin, extra_args: list[str] | None = None,
        *, quiet: bool = False,
    ) -> None:
        self.config = config
        self.plugin = plugin
        self.extra_args = list(extra_args or [])
        self.quiet = quiet
        self.took: dict[str, float] = {}  # each leg's latest run, its retries included (runner.confirm)

    def args(self, run_id: str) -> list[str]:
        return [
            *installed_legs_args(),
            *(arg for name in UNUSED_PLUGINS for arg in ("-p", f"no:{name}")),
            "--continue-on-collection-errors",  # one broken leg module must not silence the rest
            "-m", MARK_EXPRESSION,
            f"--run-id={run_id}",
            "--assert=plain",  # legs raise LegFailed; rewriting would only cost start-up time
            "-q", "--tb=no", "--no-header",
            *self.extra_args,
        ]

    def run(self, run: RunContext | str, slot_start: float | None = None, legs: Sequence[str] | None = None,
            stop: threading.Event | None = None) -> RunReport:
        """One session of ``legs`` (default: every leg the config selects) in the run's context (its id, a
        maintenance window: the session reads them from its stash). With a ``slot_start`` (wall time)
        and retries configured, a failed leg is confirmed inside its own interval (SPEC 15, 18). Once
        ``stop`` is set (SIGTERM) no further attempt starts: the leg running finishes, the others are
        not begun, the sinks flush."""
        started = time.perf_counter()
        run = RunContext(run) if isinstance(run, str) else run
        stop = stop or threading.Event()
        config = self.config
        session_config = config if legs is None else dataclasses.replace(config, legs=tuple(legs))
        plugins: list[object] = [ProvidedConfig(session_config, run), self.plugin,
                                 StopAfterSignal(stop)]
        if slot_start is not None and config.confirm_retries > 0:
            start = slot_start
            plugins.append(Confirmation(config.confirm_retries, config.confirm_delay_seconds,
                                        lambda leg: worst_case_seconds(LEGS[leg], config),
                                        lambda leg: start + config.interval_of(leg), stop,
                                        tail_seconds=FLUSH_SECONDS, took=self.took,
                                        budget_seconds=lambda leg: slow_threshold(LEGS[leg], config)))
        with stdout_redirected(self.quiet), db.one_detection(run.outage):
            code = pytest.main(self.args(run.run_id), plugins=plugins)
        return RunReport(
            run_id=run.run_id,
            outcomes=list(self.plugin.outcomes),
            pytest_exit_code=int(code),
            duration_seconds=time.perf_counter() - started,
            finished_at=time.time(),
            stopped=stop.is_set(),
        )
