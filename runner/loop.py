"""The continuous runner: every interval slot, one run of the legs, on one replica of the cluster.

The loop ticks at the shortest leg interval (SPEC 18); slots are wall-clock multiples of it (fixed
rate, no drift, and every replica agrees on them), and each tick runs the legs whose interval
divides its time. A run serves the slot it starts in: one that overruns its slot delays the next
one, never skips it; runs never overlap. Nothing raised by a run ends the loop; SIGTERM/SIGINT
let the current leg attempt finish, start nothing more, flush, and exit.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any

from runner.leadership import Leadership
from runner.legrun import LegRunner, RunReport
from runner.signals.metrics import ProbeMetrics
from runner.sweep import sweep_orphans
from synthetics import db
from synthetics.config import ProbeConfig
from synthetics.db import GUARD_SECONDS
from synthetics.run import RunContext

log = logging.getLogger("payment_probe.runner")

FIRST_RUN_GRACE_SECONDS = 60.0  # longer than any sensible scrape interval
MAINTENANCE_CHECK_SECONDS = 15.0
# Leadership check + claim, maintenance check, sweep, audit flush (+ one-by-one retry): one
# database guard each; the event API and the Pushgateway: one 5 s budget each.
SURROUNDING_STEPS_SECONDS = 6 * GUARD_SECONDS + 2 * 5.0


def new_run_id(slot_start: float | None = None) -> str:
    """A fresh id; a slot's run carries its slot (``s<unix seconds>-<6 hex>``), so the audit trail
    shows which slot each run served and that no slot ran twice."""
    if slot_start is None:
        return uuid.uuid4().hex[:12]
    return f"s{int(slot_start)}-{uuid.uuid4().hex[:6]}"


class Runner:
    def __init__(
        self,
        config: ProbeConfig,
        metrics: ProbeMetrics,
        legs: LegRunner,
        *,
        leadership: Leadership | None = None,
        on_run: Callable[[RunReport], None] | None = None,
        first_run_grace_seconds: float | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.legs = legs
        self.leadership = leadership
        self.on_run = on_run
        # A fresh process's first run waits this long, so Prometheus scrapes its primed zeros
        # first and the alert rules count that run (a restart must not hide a failure).
        self.first_run_grace_seconds = (
            min(FIRST_RUN_GRACE_SECONDS, config.tick_seconds) if first_run_grace_seconds is None
            else first_run_grace_seconds
        )
        self.stop_requested = threading.Event()
        self.last_heartbeat = time.monotonic()
        self.last_outage: db.Outage | None = None  # the latest slot's (database_out_since_last_run)
        self.runs_done = 0
        self.maintenance_open = False
        self.maintenance_window: Any = None  # the window last read (runner.maintenance.Window)
        self._maintenance_until = 0.0  # monotonic end of that window
        self._maintenance_checked = 0.0
        self._signals = 0

    # ---- health ------------------------------------------------------------------------------
    def stale_after_seconds(self) -> float:
        """The run's wall-time bound: every leg's timeout plus every bounded step around the legs
        (leadership, maintenance, sweep, audit flush, events, Pushgateway), plus the slot the
        confirmation's retries may fill (each leg's inside its own interval). Past it the loop is stuck."""
        confirming = self.config.longest_interval_seconds if self.config.confirm_retries > 0 else 0.0
        return len(self.config.legs) * self.config.leg_timeout_seconds + SURROUNDING_STEPS_SECONDS + confirming

    def health(self) -> tuple[bool, dict[str, Any]]:
        age = time.monotonic() - self.last_heartbeat
        ok = age <= self.stale_after_seconds()
        return ok, {"status": "ok" if ok else "stuck", "enabled": self.config.enabled,
                    "heartbeat_age_seconds": round(age, 3), "runs": self.runs_done}

    # ---- signals -------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second %s: exiting at once", signal.Signals(signum).name)
            logging.shutdown()
            os._exit(128 + signum)
        log.info("%s received: finishing the current run, then exiting", signal.Signals(signum).name)
        self.stop_requested.set()

    # ---- the loop ------------------------------------------------------------------------------
    def serve_disabled(self) -> None:
        log.info("payment-probe is disabled (PAYMENT_PROBE_ENABLED is off): no legs will run")
        while not self.stop_requested.wait(1.0):
            self.last_heartbeat = time.monotonic()

    def run_forever(self, max_runs: int | None = None) -> None:
        interval = self.config.tick_seconds
        next_slot = math.floor(time.time() / interval) * interval
        not_before = time.time() + (self.first_run_grace_seconds if self.runs_done == 0 else 0.0)
        while not self.stop_requested.is_set():
            self.last_heartbeat = time.monotonic()
            now = time.monotonic()
            if now - self._maintenance_checked >= MAINTENANCE_CHECK_SECONDS or (
                    self.maintenance_open and now >= self._maintenance_until):
                self.refresh_maintenance()  # every replica, leader or not, exports the window; at its end at once
            wait = max(next_slot, not_before) - time.time()
            if wait > 0:
                self.stop_requested.wait(min(wait, 1.0))
                continue
            # The slot is the one the run starts in (SPEC 8): after a start-up grace, a restart or an
            # overrun, one that has already ended is never served (its claim may be another
            # replica's, its deadline past), and the slot after it is never skipped.
            next_slot = max(next_slot, math.floor(time.time() / interval) * interval)
            self.tick(next_slot)
            if max_runs is not None and self.runs_done >= max_runs:
                return
            next_slot += interval

    def tick(self, slot_start: float) -> RunReport | None:
        """One slot: claim it (when clustered), sweep orphans, run the legs. Never raises."""
        outage = db.Outage()  # this slot's: a frozen database is detected once per run, not once per step
        try:
            with db.one_detection(outage):
                leadership = self.leadership
                if leadership is not None and not (leadership.is_leader() and leadership.claim(slot_start)):
                    self.follow()  # another replica runs this tick: export what it recorded
                    return None
                return self.run_once(slot_start)
        except Exception as exc:
            self.metrics.run_errors.inc()
            log.exception("run crashed outside the legs (%s); the loop goes on", type(exc).__name__)
            return None
        finally:
            self.last_outage = outage
            self.last_heartbeat = time.monotonic()

    def database_out_since_last_run(self) -> bool:
        """Between runs, after a run that found the database out: no wait on it (the loop's clock must
        not stall); the next run tries it again. Inside a run, its own outage decides."""
        return db.current_outage() is None and self.last_outage is not None and self.last_outage.out

    def follow(self) -> None:
        """Read this location's latest runs of each leg from the audit table into the exported view
        (runner.leghistory): every replica's gauges say what the location's leader recorded. Bounded
        (one guarded statement); while the database is out the view stays as it was."""
        history = self.metrics.history
        if not self.config.database_url or history is None or self.database_out_since_last_run():
            return
        from runner.leghistory import read_latest_runs

        try:
            latest = read_latest_runs(self.config.database_url, self.config.audit_table, history.legs,
                                      self.config.location, self.config.environment)
        except Exception as exc:
            log.debug("could not read the location's latest runs (%s)", type(exc).__name__)
            return
        history.replace(latest)

    def refresh_maintenance(self) -> bool:
        """Is a maintenance window open? Read from the database; while it cannot be read, the window
        last read stays open only until its own end (measured on the database's clock when read,
        then on this process's monotonic clock): a window never outlives its end on any replica."""
        self._maintenance_checked = time.monotonic()
        if not self.config.database_url:
            return False
        from runner import maintenance

        try:
            if self.database_out_since_last_run():
                raise db.DatabaseOut("the last run found the database out")
            reading = maintenance.open_now(self.config.database_url)
        except Exception:
            still_open = self.maintenance_window is not None and time.monotonic() < self._maintenance_until
            if not still_open and self.maintenance_window is not None:
                log.warning("maintenance window ended at %s (database unreachable; ended by its own clock)",
                            self.maintenance_window.ends_at.isoformat())
                self.maintenance_window = None
            self._set_maintenance(still_open)
            return still_open
        window = reading.window
        if (window is not None) != self.maintenance_open:
            if window is not None:
                log.warning("maintenance window open until %s: %s", window.ends_at.isoformat(), window.reason)
            else:
                log.warning("maintenance window closed")
        self.maintenance_window = window
        self._maintenance_until = time.monotonic() + reading.seconds_left
        self._set_maintenance(window is not None)
        return self.maintenance_open

    def _set_maintenance(self, is_open: bool) -> None:
        self.maintenance_open = is_open
        self.metrics.maintenance.set(1 if is_open else 0)

    def run_once(self, slot_start: float | None = None) -> RunReport:
        """One run: at a tick, the legs due at it; without a slot (``run --once``), every selected leg."""
        maintenance = self.refresh_maintenance()
        self.sweep()
        legs = self.config.legs if slot_start is None else self.config.due_legs(slot_start)
        # A confirmation retry must end inside its leg's interval, counted from the slot (or now, once).
        start = time.time() if slot_start is None else slot_start
        # This slot's, handed to its session; the outage is the slot's (tick), or fresh for run --once.
        run = RunContext(new_run_id(slot_start), maintenance=maintenance, outage=db.current_outage() or db.Outage())
        report = self.legs.run(run, start, legs, self.stop_requested)
        self.runs_done += 1
        # A run's cyclic garbage (pytest's session, config, reports) is freed at once, so RSS stays
        # flat; everything alive after the first run (modules, plugins, registry, sinks) lives as
        # long as the process and is frozen, so these collections walk only what a run creates.
        gc.collect()
        if self.runs_done == 1:
            gc.freeze()
        self.metrics.run_duration.set(report.duration_seconds)
        if report.outcomes:
            # Only a run that judged legs feeds the dead man's switch: a pytest that dies on
            # start every time must not look like a healthy prober.
            self.metrics.runs.inc()
            self.metrics.last_run.set(report.finished_at)
        if not report.stopped and (report.pytest_exit_code not in (0, 1) or len(report.outcomes) < len(legs)):
            self.metrics.run_errors.inc()
            log.error("pytest ended with exit code %d and %d of %d outcomes",
                      report.pytest_exit_code, len(report.outcomes), len(legs))
        if self.on_run is not None:
            try:
                self.on_run(report)
            except Exception:
                log.exception("on_run callback failed")
        return report

    def sweep(self) -> int:
        if not self.config.database_url:
            return 0
        try:
            reaped = sweep_orphans(self.config.database_url, self.config.leg_timeout_seconds)
        except Exception as exc:
            self.metrics.run_errors.inc()
            log.warning("sweep of leftover cohort teams failed (%s)", type(exc).__name__)
            return 0
        if reaped:
            self.metrics.cohort_reaped.inc(reaped)
            log.warning("reaped %d leftover cohort team(s) of a killed run", reaped)
        return reaped


def replica_name() -> str:
    """Host and pid: in a pod the hostname is the pod name, which is what an operator looks for."""
    return f"{socket.gethostname()}-{os.getpid()}"
