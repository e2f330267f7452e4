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
from datetime import UTC, datetime, timedelta
from typing import Any

from runner.audit_store import hourly_table, regclass, table_identifier
from runner.signals.outcome import Outcome
from runner.timefmt import utc_iso
from synthetics import db
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
CROSS JOIN LATERAL (SELECT DISTINCT coalesce(location, 'local') AS location FROM {t} d
                    WHERE d.leg = l.leg AND d.created_at > now() - interval '1 day'
                      AND coalesce(d.environment, '') = coalesce(%(env)s, '')) p
CROSS JOIN LATERAL (SELECT result, reason, created_at FROM {t} r
                    WHERE r.leg = l.leg AND coalesce(r.location, 'local') = p.location
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


class StatusSource:
    """Answers ``snapshot()``; one short, guarded connection per call, never a held session."""

    def __init__(self, database_url: Secret | None, table: str, intervals: float | Mapping[str, float],
                 recent: Callable[[], Sequence[Outcome]] = lambda: (), environment: str | None = None,
                 window: Callable[[], Any] = lambda: None) -> None:
        """``intervals``: each leg the deployment runs and its interval (SPEC 18; a number: every leg at it).
        A leg left out (PAYMENT_PROBE_LEGS) is not on the page."""
        self.database_url = database_url
        self.table = table
        self.intervals = dict(intervals) if isinstance(intervals, Mapping) else dict.fromkeys(LEGS, float(intervals))
        self.legs = [leg for leg in LEGS if leg in self.intervals]
        self.interval_seconds = min(self.intervals.values())  # the shortest: how often something runs
        self.recent = recent
        self.environment = environment
        # The window the runner holds open (it ends by itself at its end): the banner's source
        # while the database cannot be read, so the page, the gauge and the outcomes agree.
        self.window = window

    def snapshot(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        if self.database_url is not None:
            try:
                return self._from_database(now)
            except Exception as exc:
                return self.from_memory(now, f"history unavailable: the database is unreachable "
                                              f"({type(exc).__name__})")
        return self.from_memory(now, "history unavailable: no database is configured, or the prober is disabled")

    # ---- from the audit table --------------------------------------------------------------
    def _from_database(self, now: datetime) -> dict[str, Any]:
        from runner import maintenance

        assert self.database_url is not None
        queries = _sql(self.table)
        # Only this prober's environment: a laptop's rows in the same table never show, nor count. It is
        # matched as coalesce(environment, '') so that the (leg, environment, created_at) index serves.
        params = {"legs": self.legs, "days": DAYS, "incident_days": INCIDENT_DAYS, "max_incidents": MAX_INCIDENTS,
                  "env": self.environment}
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
        latest = max((_utc(row[3]) for row in current.values()), default=None)
        today = now.astimezone(UTC).date()
        legs = []
        for leg in self.legs:
            cur = current.get(leg)
            up = uptime.get(leg)
            legs.append({
                "leg": leg,
                "result": cur[0] if cur else None,
                "severity": cur[1] if cur else None,
                "reason": cur[2] if cur else None,
                "detail": cur[4] if cur else None,
                "last_run_at": _iso(cur[3]) if cur else None,
                "since": _iso(cur[6]) if cur else None,
                "uptime": {
                    "24h": _ratio(up[1], up[0]) if up else None,
                    "7d": _ratio(up[3], up[2]) if up else None,
                    "30d": _ratio(up[5], up[4]) if up else None,
                },
                # How much history the uptime figures stand on: a period longer than this says so.
                "data_seconds": _data_seconds(now, cur[5]) if cur else None,
                "latency_ms": {"p50": _round(latency[leg][0]) if leg in latency else None,
                               "p95": _round(latency[leg][1]) if leg in latency else None},
                "days": [_day(today - timedelta(days=DAYS - 1 - i), days.get(leg, {})) for i in range(DAYS)]
                if rolled_up else [],
            })
        return self._shape(now, latest, legs, [
            {"leg": leg, "started_at": _iso(started), "ended_at": _iso(ended), "ongoing": ended is None,
             "runs": int(runs), "reason": reason, "trace_id": trace_id}
            for leg, started, ended, runs, reason, trace_id in incidents
        ], [w.as_json() | {"open": w.starts_at <= now} for w in windows], history=True, note=None,
            locations=located)

    # ---- from the runner's memory ------------------------------------------------------------
    def from_memory(self, now: datetime, note: str) -> dict[str, Any]:
        by_leg: dict[str, Outcome] = {}
        for outcome in self.recent():
            by_leg[outcome.leg] = outcome
        latest = max((datetime.fromtimestamp(o.timestamp, UTC) for o in by_leg.values()), default=None)
        legs: list[dict[str, Any]] = []
        for leg in self.legs:
            o = by_leg.get(leg)
            legs.append({
                "leg": leg, "result": o.result if o else None, "severity": o.severity if o else None,
                "reason": o.reason if o else None, "detail": o.detail if o else None, "data_seconds": None,
                "last_run_at": _iso(datetime.fromtimestamp(o.timestamp, UTC)) if o else None, "since": None,
                "uptime": {"24h": None, "7d": None, "30d": None}, "latency_ms": {"p50": None, "p95": None},
                "days": [],
            })
        window = self.window()
        windows = [] if window is None else [window.as_json() | {"open": True}]
        return self._shape(now, latest, legs, [], windows, history=False, note=note)

    def _shape(self, now: datetime, latest: datetime | None, legs: list[dict[str, Any]],
               incidents: list[dict[str, Any]], windows: list[dict[str, Any]], *, history: bool,
               note: str | None, locations: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
        age = None if latest is None else max(0.0, (now - latest).total_seconds())
        stale_after = 3 * self.interval_seconds
        for leg in legs:  # each leg's latest run, against its own interval (SPEC 18)
            interval = self.intervals[leg["leg"]]
            leg["interval_seconds"] = interval
            at = leg.get("last_run_at")
            leg["age_seconds"] = None if at is None else round(
                max(0.0, (now - datetime.fromisoformat(at)).total_seconds()), 1)
            leg["stale"] = leg["age_seconds"] is not None and leg["age_seconds"] > 3 * interval
        return {
            "generated_at": _iso(now),
            "environment": self.environment,
            "interval_seconds": self.interval_seconds,
            "latest_run_at": _iso(latest),
            "latest_run_age_seconds": None if age is None else round(age, 1),
            "stale": age is None or age > stale_after,
            "stale_after_seconds": stale_after,
            "history_available": history,
            "note": note,
            "legs": legs,
            "incidents": incidents,
            "maintenance": windows,
            "locations": locations or {},  # location -> each leg's latest result there
        }


def _data_seconds(now: datetime, first_at: datetime | None) -> float | None:
    """How long the leg's history is: seconds since its first row (one index step)."""
    if first_at is None:
        return None
    return max(0.0, (now - _utc(first_at)).total_seconds())


def _ratio(up: int, total: int) -> float | None:
    return None if not total else round(100.0 * up / total, 3)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


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
