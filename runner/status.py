"""The status page's facts: per-leg state, uptime, daily bars, latency, incidents, maintenance.

Built from the audit table, so every replica shows the same history and it survives restarts.
The aggregating is SQL's (the ``(leg, created_at)`` index the migration creates keeps it fast on
a year of rows); Python only shapes the answer. When the database is unreachable the page is
built from the runner's in-memory recent outcomes and says the history is unavailable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from runner.audit_store import hourly_table, regclass, table_identifier
from runner.signals.outcome import Outcome
from runner.timefmt import utc_iso
from synthetics import db
from synthetics.config import DEFAULT_LOCATION
from synthetics.registry import LEGS
from synthetics.secret import Secret

DAYS = 90
RANK = {"pass": 0, "degraded": 1, "fail": 2}
UP = ("pass", "degraded")  # degraded counts as up, as Checkly counts it
INCIDENT_DAYS = 30
MAX_INCIDENTS = 20


def _utc(value: datetime) -> datetime:
    """A ``timestamp without time zone`` column is read as UTC (SPEC section 13)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _iso(value: datetime | None) -> str | None:
    return None if value is None else utc_iso(_utc(value), "seconds")


def _sql(table: str) -> dict[str, Any]:
    from psycopg import sql

    t = table_identifier(table)
    h = table_identifier(hourly_table(table))
    return {
        # The latest row of each leg, and since when its result has been the same (index walks).
        "current": sql.SQL("""
SELECT l.leg, x.result, x.severity, x.reason, x.created_at, x.detail,
       (SELECT min(e.created_at) FROM {t} e WHERE e.leg = l.leg
          AND coalesce(e.environment, '') = coalesce(%(env)s, '')) AS first_at,
       (SELECT min(s.created_at) FROM {t} s WHERE s.leg = l.leg AND coalesce(s.environment, '') = coalesce(%(env)s, '')
          AND s.created_at > coalesce((
            SELECT max(o.at) FROM unnest(ARRAY['pass', 'degraded', 'fail']) AS r(result)
            CROSS JOIN LATERAL (SELECT created_at AS at FROM {t} p
                                WHERE p.leg = l.leg AND p.result = r.result
                                  AND coalesce(p.environment, '') = coalesce(%(env)s, '')
                                ORDER BY p.created_at DESC LIMIT 1) o
            WHERE r.result <> x.result), '-infinity'))
FROM unnest(%(legs)s::text[]) AS l(leg)
CROSS JOIN LATERAL (SELECT result, severity, reason, created_at, metadata->>'detail' AS detail FROM {t} r
                    WHERE r.leg = l.leg AND coalesce(r.environment, '') = coalesce(%(env)s, '')
                    ORDER BY created_at DESC LIMIT 1) x""").format(t=t),
        # Each location's latest row per leg (SPEC 15): a walk per leg and location seen in the last day.
        "by_location": sql.SQL("""
SELECT l.leg, p.location, x.result, x.reason, x.created_at
FROM unnest(%(legs)s::text[]) AS l(leg)
CROSS JOIN LATERAL (SELECT DISTINCT coalesce(location, %(default_location)s) AS location FROM {t} d
                    WHERE d.leg = l.leg AND d.created_at > now() - interval '1 day'
                      AND coalesce(d.environment, '') = coalesce(%(env)s, '')) p
CROSS JOIN LATERAL (SELECT result, reason, created_at FROM {t} r
                    WHERE r.leg = l.leg AND coalesce(r.location, %(default_location)s) = p.location
                      AND coalesce(r.environment, '') = coalesce(%(env)s, '')
                    ORDER BY created_at DESC LIMIT 1) x
ORDER BY 2, 1""").format(t=t),
        # Uptime and daily bars from the hourly roll-up (UTC hours); latency from the last 24 h of rows.
        "uptime": sql.SQL("""
SELECT leg,
       sum(runs) FILTER (WHERE hour > date_trunc('hour', now() AT TIME ZONE 'UTC') - interval '24 hours'),
       sum(up) FILTER (WHERE hour > date_trunc('hour', now() AT TIME ZONE 'UTC') - interval '24 hours'),
       sum(runs) FILTER (WHERE hour > date_trunc('hour', now() AT TIME ZONE 'UTC') - interval '7 days'),
       sum(up) FILTER (WHERE hour > date_trunc('hour', now() AT TIME ZONE 'UTC') - interval '7 days'),
       sum(runs), sum(up)
FROM {h} WHERE hour > date_trunc('hour', now() AT TIME ZONE 'UTC') - interval '30 days' AND leg = ANY(%(legs)s)
  AND environment = coalesce(%(env)s, '')
GROUP BY leg""").format(h=h),
        "latency": sql.SQL("""
SELECT leg, percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
FROM {t} WHERE created_at > now() - interval '24 hours' AND latency_ms IS NOT NULL AND leg = ANY(%(legs)s)
  AND coalesce(environment, '') = coalesce(%(env)s, '')
GROUP BY leg""").format(t=t),
        "days": sql.SQL("""
SELECT leg, hour::date, max(CASE WHEN fails > 0 THEN 2 WHEN degraded > 0 THEN 1 ELSE 0 END), sum(runs)
FROM {h} WHERE hour >= (now() AT TIME ZONE 'UTC')::date - %(days)s + 1 AND leg = ANY(%(legs)s)
  AND environment = coalesce(%(env)s, '')
GROUP BY 1, 2""").format(h=h),
        # An incident is a run of consecutive fails: it starts at a fail whose previous run was not
        # one, and ends at the first run after it that is not a fail (or is ongoing).
        "incidents": sql.SQL("""
WITH fails AS (
  SELECT f.leg, f.created_at, f.reason, f.metadata->>'trace_id' AS trace_id,
         (SELECT p.result FROM {t} p WHERE p.leg = f.leg AND p.created_at < f.created_at
            AND coalesce(p.environment, '') = coalesce(%(env)s, '')
          ORDER BY p.created_at DESC LIMIT 1) AS previous
  FROM {t} f
  WHERE f.result = 'fail' AND f.created_at > now() - make_interval(days => %(incident_days)s)
    AND f.leg = ANY(%(legs)s) AND coalesce(f.environment, '') = coalesce(%(env)s, '')
), starts AS (
  SELECT leg, created_at AS started, reason, trace_id FROM fails WHERE previous IS DISTINCT FROM 'fail'
  ORDER BY created_at DESC LIMIT %(max_incidents)s
)
SELECT s.leg, s.started, e.ended,
       (SELECT count(*) FROM {t} c WHERE c.leg = s.leg AND c.created_at >= s.started
          AND coalesce(c.environment, '') = coalesce(%(env)s, '')
          AND c.created_at < coalesce(e.ended, 'infinity')) AS runs,
       s.reason, s.trace_id
FROM starts s
LEFT JOIN LATERAL (SELECT min(n.created_at) AS ended FROM {t} n
                   WHERE n.leg = s.leg AND n.created_at > s.started AND n.result <> 'fail'
                     AND coalesce(n.environment, '') = coalesce(%(env)s, '')) e ON true
ORDER BY s.started DESC""").format(t=t),
    }


PERIODS = ("24h", "7d", "30d")


@dataclass(frozen=True)
class LegStatus:
    """One leg's row on the page, as a store read it; ``as_json`` adds what depends on now and the
    leg's own interval (its age, stale). Unknown facts stay None (a leg that never ran, no history)."""

    leg: str
    result: str | None = None
    severity: str | None = None
    reason: str | None = None
    detail: str | None = None
    last_run_at: datetime | None = None
    since: datetime | None = None  # since when its result has been the same
    uptime: Mapping[str, float | None] = field(default_factory=lambda: dict.fromkeys(PERIODS))
    data_seconds: float | None = None  # how much history the uptime figures stand on
    latency_ms: Mapping[str, float | None] = field(default_factory=lambda: {"p50": None, "p95": None})
    days: Sequence[Mapping[str, Any]] = ()

    def as_json(self, now: datetime, interval: float) -> dict[str, Any]:
        age = None if self.last_run_at is None else round(max(0.0, (now - self.last_run_at).total_seconds()), 1)
        return {
            "leg": self.leg, "result": self.result, "severity": self.severity, "reason": self.reason,
            "detail": self.detail, "last_run_at": _iso(self.last_run_at), "since": _iso(self.since),
            "uptime": dict(self.uptime), "data_seconds": self.data_seconds, "latency_ms": dict(self.latency_ms),
            "days": list(self.days), "interval_seconds": interval, "age_seconds": age,
            "stale": age is not None and age > 3 * interval,  # against its own interval (SPEC 18)
        }


@dataclass(frozen=True)
class History:
    """What a store knows: each leg's status, incidents, maintenance windows, each location's latest."""

    legs: Sequence[LegStatus]
    incidents: Sequence[Mapping[str, Any]] = ()
    windows: Sequence[Mapping[str, Any]] = ()
    locations: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    available: bool = True  # the audit table's history (False: the runner's memory)
    note: str | None = None


class StatusStore(Protocol):
    def read(self, legs: Sequence[str], now: datetime) -> History: ...


class AuditHistory:
    """The audit table's answer: the same on every replica, surviving restarts. One short, guarded
    connection per read, never a held session."""

    def __init__(self, database_url: Secret, table: str, environment: str | None) -> None:
        self.database_url = database_url
        self.table = table
        self.environment = environment

    def read(self, legs: Sequence[str], now: datetime) -> History:
        from runner import maintenance

        queries = _sql(self.table)
        # Only this prober's environment: a laptop's rows in the same table never show, nor count. It is
        # matched as coalesce(environment, '') so that the (leg, environment, created_at) index serves.
        params = {"legs": list(legs), "days": DAYS, "incident_days": INCIDENT_DAYS, "max_incidents": MAX_INCIDENTS,
                  "env": self.environment, "default_location": DEFAULT_LOCATION}
        with db.session(self.database_url, application_name="payment-probe-status") as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            # leg -> (result, severity, reason, created_at, detail, first row's created_at, since)
            current = {r[0]: r[1:] for r in conn.execute(queries["current"], params).fetchall()}
            rolled_up = regclass(conn, hourly_table(self.table)) is not None
            uptime: dict[str, Any] = {}
            days: dict[str, dict[Any, tuple[int, int]]] = {}
            if rolled_up:
                uptime = {r[0]: r[1:] for r in conn.execute(queries["uptime"], params).fetchall()}
                for leg, day, rank, count in conn.execute(queries["days"], params).fetchall():
                    days.setdefault(leg, {})[day] = (rank, count)
            latency = {r[0]: r[1:] for r in conn.execute(queries["latency"], params).fetchall()}
            incidents = conn.execute(queries["incidents"], params).fetchall()
            located: dict[str, list[dict[str, Any]]] = {}
            for leg, location, result, reason, at in conn.execute(queries["by_location"], params).fetchall():
                located.setdefault(location, []).append(
                    {"leg": leg, "result": result, "reason": reason, "last_run_at": _iso(at)})
            windows = maintenance.open_and_upcoming(conn)
        today = now.astimezone(UTC).date()
        statuses = []
        for leg in legs:
            cur, up, lat = current.get(leg), uptime.get(leg), latency.get(leg)
            if cur is None:
                statuses.append(LegStatus(leg, days=_days(today, {}) if rolled_up else ()))
                continue
            statuses.append(LegStatus(
                leg, result=cur[0], severity=cur[1], reason=cur[2], detail=cur[4], last_run_at=_utc(cur[3]),
                since=_utc(cur[6]) if cur[6] is not None else None,
                uptime=_uptime(up),
                data_seconds=_data_seconds(now, cur[5]),
                latency_ms={"p50": _round(lat[0]), "p95": _round(lat[1])} if lat else {"p50": None, "p95": None},
                days=_days(today, days.get(leg, {})) if rolled_up else ()))
        return History(statuses, [
            {"leg": leg, "started_at": _iso(started), "ended_at": _iso(ended), "ongoing": ended is None,
             "runs": int(runs), "reason": reason, "trace_id": trace_id}
            for leg, started, ended, runs, reason, trace_id in incidents
        ], [w.as_json() | {"open": w.starts_at <= now} for w in windows], located)


class RecentOutcomes:
    """The runner's memory of its latest run: the page while the database cannot be read, with the
    window the runner holds open, so the page, the gauge and the outcomes agree."""

    def __init__(self, recent: Callable[[], Sequence[Outcome]], window: Callable[[], Any]) -> None:
        self.recent = recent
        self.window = window

    def read(self, legs: Sequence[str], now: datetime, note: str | None = None) -> History:
        by_leg = {outcome.leg: outcome for outcome in self.recent()}
        statuses = []
        for leg in legs:
            o = by_leg.get(leg)
            statuses.append(LegStatus(leg) if o is None else LegStatus(
                leg, result=o.result, severity=o.severity, reason=o.reason, detail=o.detail,
                last_run_at=datetime.fromtimestamp(o.timestamp, UTC)))
        window = self.window()
        return History(statuses, windows=[] if window is None else [window.as_json() | {"open": True}],
                       available=False, note=note)


class StatusSource:
    """Answers ``snapshot()`` from the audit table, or from the runner's memory when it cannot."""

    def __init__(self, database_url: Secret | None, table: str, intervals: float | Mapping[str, float],
                 recent: Callable[[], Sequence[Outcome]] = lambda: (), environment: str | None = None,
                 window: Callable[[], Any] = lambda: None) -> None:
        """``intervals``: each leg the deployment runs and its interval (SPEC 18; a number: every leg at it).
        A leg left out (PAYMENT_PROBE_LEGS) is not on the page."""
        self.store: StatusStore | None = None if database_url is None else AuditHistory(
            database_url, table, environment)
        self.memory = RecentOutcomes(recent, window)
        self.intervals = dict(intervals) if isinstance(intervals, Mapping) else dict.fromkeys(LEGS, float(intervals))
        self.legs = [leg for leg in LEGS if leg in self.intervals]
        self.interval_seconds = min(self.intervals.values())  # the shortest: how often something runs
        self.environment = environment

    def snapshot(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        if self.store is not None:
            try:
                return self._shape(now, self.store.read(self.legs, now))
            except Exception as exc:
                return self.from_memory(now, f"history unavailable: the database is unreachable "
                                              f"({type(exc).__name__})")
        return self.from_memory(now, "history unavailable: no database is configured, or the prober is disabled")

    def from_memory(self, now: datetime, note: str) -> dict[str, Any]:
        return self._shape(now, self.memory.read(self.legs, now, note))

    def _shape(self, now: datetime, history: History) -> dict[str, Any]:
        latest = max((leg.last_run_at for leg in history.legs if leg.last_run_at is not None), default=None)
        age = None if latest is None else max(0.0, (now - latest).total_seconds())
        stale_after = 3 * self.interval_seconds
        return {
            "generated_at": _iso(now),
            "environment": self.environment,
            "interval_seconds": self.interval_seconds,
            "latest_run_at": _iso(latest),
            "latest_run_age_seconds": None if age is None else round(age, 1),
            "stale": age is None or age > stale_after,
            "stale_after_seconds": stale_after,
            "history_available": history.available,
            "note": history.note,
            "legs": [leg.as_json(now, self.intervals[leg.leg]) for leg in history.legs],
            "incidents": [dict(i) for i in history.incidents],
            "maintenance": [dict(w) for w in history.windows],
            "locations": {k: [dict(r) for r in v] for k, v in history.locations.items()},  # location -> latest there
        }


def _data_seconds(now: datetime, first_at: datetime | None) -> float | None:
    """How long the leg's history is: seconds since its first row (one index step)."""
    if first_at is None:
        return None
    return max(0.0, (now - _utc(first_at)).total_seconds())


def _uptime(row: Sequence[int] | None) -> dict[str, float | None]:
    """(runs, up) per period, from the roll-up's row: 24 h, 7 d, 30 d."""
    if not row:
        return dict.fromkeys(PERIODS)
    return {period: _ratio(row[2 * i + 1], row[2 * i]) for i, period in enumerate(PERIODS)}


def _ratio(up: int, total: int) -> float | None:
    return None if not total else round(100.0 * up / total, 3)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _days(today: date, by_day: dict[Any, tuple[int, int]]) -> list[dict[str, Any]]:
    return [_day(today - timedelta(days=DAYS - 1 - i), by_day) for i in range(DAYS)]


def _day(day: Any, by_day: dict[Any, tuple[int, int]]) -> dict[str, Any]:
    found = by_day.get(day)
    if found is None:
        return {"day": day.isoformat(), "result": "no_data", "runs": 0}
    rank, count = found
    return {"day": day.isoformat(), "result": ("pass", "degraded", "fail")[rank], "runs": int(count)}


class StatusSnapshots:
    """``/status`` without a database session per request (SPEC section 13, 10).

    One query at a time refreshes the snapshot, at most every ``REFRESH_SECONDS``; a request waits
    at most ``ANSWER_SECONDS`` for a refresh it started and otherwise gets the last snapshot, with
    its age (``snapshot_age_seconds``): 500 concurrent requests cost one session, and a frozen
    database costs a request under a second.
    """

    REFRESH_SECONDS = 15.0
    ANSWER_SECONDS = 0.8

    def __init__(self, source: StatusSource) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._latest: tuple[float, dict[str, Any]] | None = None  # (monotonic time taken, snapshot)
        self._refresh: threading.Thread | None = None
        self.refreshes = 0  # how many snapshots were taken (each one database session at most)

    def get(self) -> dict[str, Any]:
        started = None
        with self._lock:
            latest = self._latest
            fresh = latest is not None and time.monotonic() - latest[0] < self.REFRESH_SECONDS
            if not fresh and (self._refresh is None or not self._refresh.is_alive()):
                self._refresh = started = threading.Thread(target=self._take, name="status-snapshot", daemon=True)
                started.start()
            refresh = self._refresh
        # The request that started a refresh (or any, before the first snapshot) waits a moment for
        # it; the others answer from the last snapshot at once, so a slow database queues nobody.
        if refresh is not None and (started is not None or latest is None):
            refresh.join(self.ANSWER_SECONDS)
        with self._lock:
            latest = self._latest
        if latest is None:
            return self._aged(time.monotonic(), self.source.from_memory(
                datetime.now(UTC), "history loading: the database has not answered yet"))
        return self._aged(latest[0], latest[1])

    def _take(self) -> None:
        snapshot = self.source.snapshot()
        with self._lock:
            self._latest = (time.monotonic(), snapshot)
            self.refreshes += 1

    def _aged(self, taken: float, snapshot: dict[str, Any]) -> dict[str, Any]:
        """The snapshot as of now: its own age, and the latest run's age moved on by as much."""
        age = max(0.0, time.monotonic() - taken)
        answer = dict(snapshot, snapshot_age_seconds=round(age, 1))
        run_age = snapshot.get("latest_run_age_seconds")
        if run_age is not None:
            answer["latest_run_age_seconds"] = round(run_age + age, 1)
        answer["stale"] = answer["latest_run_age_seconds"] is None or (
            answer["latest_run_age_seconds"] > snapshot["stale_after_seconds"])
        return answer
