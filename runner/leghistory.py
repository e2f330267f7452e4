"""Each leg's latest runs in this location, exported as the gauges the alert rules read (SPEC 11, 18).

The alert windows follow each leg's own interval. PromQL's range selectors cannot take a window
from a series, so the prober exports what the windows would have counted: whether the leg's latest
run failed (or ended critical), how many of its latest 3 runs failed, and when it last ran; the
rules compare that run's age with the exported interval. Runs recorded inside a maintenance window
count as not failed: a leg whose window closed does not page for what failed inside it.

Every replica of a location exports the same view, read from the shared audit table at start and
at every tick it does not run itself (it follows the leader), so a restart, a rollout or a change
of leader keeps an incident's state from the first scrape of the new process instead of resolving
it until the leg's next run. Without a database (a prod-safe-only deployment) the view is this
process's own runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runner.signals.metrics import ProbeMetrics
from runner.signals.outcome import Outcome
from synthetics import db
from synthetics.config import DEFAULT_LOCATION
from synthetics.secret import Secret

RUNS_KEPT = 3  # "2 of the last 3 runs" (confirmation off), "its latest run" (on)


@dataclass(frozen=True)
class LegRun:
    failed: bool
    critical: bool
    maintenance: bool  # recorded while a maintenance window was open
    finished_at: float  # unix seconds

    @classmethod
    def of(cls, result: str, severity: str, maintenance: bool, finished_at: float) -> LegRun:
        """A run from what an outcome (or its audit row) says."""
        return cls(failed=result == "fail", critical=severity == "critical", maintenance=maintenance,
                   finished_at=finished_at)


class LegHistory:
    def __init__(self, metrics: ProbeMetrics, legs: Sequence[str]) -> None:
        self.metrics = metrics
        self.legs = tuple(legs)
        self._runs: dict[str, deque[LegRun]] = {leg: deque(maxlen=RUNS_KEPT) for leg in self.legs}

    def record(self, outcome: Outcome) -> None:
        """One of this process's outcomes (the MetricsSink calls it)."""
        if outcome.leg in self._runs:
            self._runs[outcome.leg].appendleft(
                LegRun.of(outcome.result, outcome.severity, outcome.maintenance, outcome.timestamp))
            self._export(outcome.leg)

    def replace(self, latest: Mapping[str, Iterable[LegRun]]) -> None:
        """The location's latest runs as the audit table holds them (newest first), for the legs it has
        rows of; a leg without rows keeps what this process knows."""
        for leg, runs in latest.items():
            if leg in self._runs:
                self._runs[leg] = deque(sorted(runs, key=lambda r: -r.finished_at)[:RUNS_KEPT], maxlen=RUNS_KEPT)
                self._export(leg)

    def _export(self, leg: str) -> None:
        runs = self._runs[leg]
        newest = runs[0] if runs else None
        counted = newest is not None and not newest.maintenance
        self.metrics.leg_last_run.labels(leg=leg).set(newest.finished_at if newest else 0)
        self.metrics.leg_latest_failed.labels(leg=leg).set(1 if counted and newest and newest.failed else 0)
        self.metrics.leg_latest_critical.labels(leg=leg).set(1 if counted and newest and newest.critical else 0)
        self.metrics.leg_recent_failures.labels(leg=leg).set(sum(1 for r in runs if r.failed and not r.maintenance))


def _query(table: str) -> Any:
    from psycopg import sql

    from runner.audit_store import table_identifier

    # One index walk per leg (the (leg, environment, created_at) index), whatever the table's size.
    return sql.SQL("""
SELECT l.leg, x.result, x.severity, x.maintenance, extract(epoch FROM x.created_at)::float8
FROM unnest(%(legs)s::text[]) AS l(leg)
CROSS JOIN LATERAL (SELECT result, severity, coalesce(metadata->>'maintenance', '') = 'true' AS maintenance,
                           created_at
                    FROM {t} r
                    WHERE r.leg = l.leg AND coalesce(r.environment, '') = coalesce(%(env)s, '')
                      AND coalesce(r.location, %(default_location)s) = %(location)s
                    ORDER BY r.created_at DESC LIMIT %(kept)s) x
""").format(t=table_identifier(table))


def read_latest_runs(database_url: Secret, table: str, legs: Sequence[str], location: str,
                     environment: str | None) -> dict[str, list[LegRun]]:
    """The location's latest runs of each leg (one guarded connection). Raises on any database error."""
    params = {"legs": list(legs), "env": environment, "location": location, "kept": RUNS_KEPT,
              "default_location": DEFAULT_LOCATION}
    latest: dict[str, list[LegRun]] = {}
    with db.session(database_url, budget=db.STATEMENT_GUARD_SECONDS, application_name="payment-probe-history") as conn:
        for leg, result, severity, maintenance, at in conn.execute(_query(table), params).fetchall():
            latest.setdefault(leg, []).append(LegRun.of(result, severity, bool(maintenance), float(at)))
    return latest
