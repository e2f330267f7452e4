"""Audit rows in Postgres, one per outcome; spooled to disk only while the database is away.

Rows carry the outcome's id as primary key and are inserted with ``ON CONFLICT DO NOTHING``:
a replay after an ambiguous commit can never duplicate a row. Three ways a write ends:

- it lands (spooled rows first, in the order they were produced);
- the database is unreachable (no SQLSTATE: refused, reset, a frozen peer cut by the guard):
  the rows wait in the spool and land exactly once when it returns;
- the database rejects a row for good (privilege, a column of the wrong type): rows are then
  tried one by one, each rejected row goes to a dead-letter file beside the spool (logged at
  ERROR, counted) and never blocks the rows after it.

The table name is always quoted as an identifier (``schema.table`` too), never pasted into SQL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runner.signals.outcome import Outcome
from runner.signals.spool import Spool
from synthetics import __version__, db
from synthetics.secret import Secret

log = logging.getLogger("payment_probe.audit")

ACTOR = "system:payment_probe"
ACTION = "payment_probe.leg_outcome"
REQUIRED_COLUMNS = (
    "id", "created_at", "actor", "action", "run_id", "leg", "result", "severity", "reason",
    "latency_ms", "environment", "metadata", "location",
)
# The types each column may have in an existing table; anything else rejects every insert.
TEXT = frozenset({"text", "character varying", "character"})
COLUMN_TYPES: dict[str, frozenset[str]] = {
    "id": frozenset({"uuid"}) | TEXT,
    "created_at": frozenset({"timestamp with time zone", "timestamp without time zone"}),
    "latency_ms": frozenset({"double precision", "real", "numeric"}),
    "metadata": frozenset({"jsonb", "json"}),
    **{name: TEXT for name in ("actor", "action", "run_id", "leg", "result", "severity", "reason", "environment",
                               "location")},
}


class AuditSchemaError(RuntimeError):
    """The audit table (or the role's rights on it) cannot take the probe's rows: exit 2 at start."""


def table_identifier(table: str) -> Any:
    from psycopg import sql

    return sql.Identifier(*table.split("."))


def create_table_sql(table: str) -> Any:
    from psycopg import sql

    return sql.SQL("""
CREATE TABLE IF NOT EXISTS {table} (
  id          uuid PRIMARY KEY,
  created_at  timestamptz NOT NULL DEFAULT now(),
  actor       text NOT NULL,
  action      text NOT NULL,
  run_id      text NOT NULL,
  leg         text NOT NULL,
  result      text NOT NULL,
  severity    text NOT NULL,
  reason      text NOT NULL,
  latency_ms  double precision,
  environment text,
  metadata    jsonb NOT NULL DEFAULT '{{}}'::jsonb,
  location    text
)""").format(table=table_identifier(table))


def index_sql(table: str) -> list[Any]:
    """History by leg and time (the status page's walks), by leg, result and time (since when a
    state holds: one index lookup per result, never a scan of a leg whose result never changed),
    and the failures alone (its incidents)."""
    from psycopg import sql

    base = table.split(".")[-1][:40]
    return [
        sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {table} (leg, result, created_at)").format(
            name=sql.Identifier(base + "_leg_result_idx"), table=table_identifier(table)),
        sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {table} (leg, created_at)").format(
            name=sql.Identifier(base + "_leg_created_at_idx"), table=table_identifier(table)),
        sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {table} (leg, created_at) WHERE result = 'fail'").format(
            name=sql.Identifier(base + "_fail_idx"), table=table_identifier(table)),
        # The status page shows one environment: with it in the index, "the run before this one" is
        # one backward index step. With it only filtered (IS NOT DISTINCT FROM, which the planner
        # estimates as matching one row) each step sorted the leg's whole history: 7.9 s at 181,440
        # rows, past the statement timeout, so the page always fell back to "history unavailable".
        sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {table} (leg, (coalesce(environment, '')), created_at)").format(
            name=sql.Identifier(base + "_leg_env_idx"), table=table_identifier(table)),
    ]


def hourly_table(table: str) -> str:
    """The hourly roll-up beside the audit table (Gatus's ``endpoint_uptimes``): ``<table>_hourly``."""
    return f"{table}_hourly"


def rollup_sql(conn: Any, table: str, schema: str) -> list[Any]:
    """One row per leg per UTC hour, kept by a trigger on every insert (spool replays, any writer):
    30-day uptime reads ~4,300 rows instead of ~52,000. The trigger runs as its owner, so the
    probe's own role needs nothing beyond INSERT on the audit table."""
    from psycopg import sql

    name = table.split(".")[-1]
    qualified = table if "." in table else f"{schema}.{table}"
    hourly = table_identifier(hourly_table(qualified))
    function = table_identifier(f"{qualified.rsplit('.', 1)[0]}.{name[:40]}_hourly_fn")
    body = sql.SQL("""
BEGIN
  INSERT INTO {hourly} AS h (leg, environment, hour, runs, up, fails, degraded)
  VALUES (NEW.leg, coalesce(NEW.environment, ''), date_trunc('hour', NEW.created_at AT TIME ZONE 'UTC'), 1,
          (NEW.result IN ('pass', 'degraded'))::int, (NEW.result = 'fail')::int, (NEW.result = 'degraded')::int)
  ON CONFLICT (leg, environment, hour) DO UPDATE SET runs = h.runs + 1, up = h.up + EXCLUDED.up,
    fails = h.fails + EXCLUDED.fails, degraded = h.degraded + EXCLUDED.degraded;
  RETURN NULL;
END""").format(hourly=hourly)
    return [
        # A roll-up from before environments were kept apart is derived data: rebuilt from the rows.
        sql.SQL("DROP TABLE IF EXISTS {hourly}").format(hourly=hourly),
        sql.SQL("""CREATE TABLE IF NOT EXISTS {hourly} (
  leg text NOT NULL, environment text NOT NULL DEFAULT '', hour timestamp NOT NULL,
  runs integer NOT NULL, up integer NOT NULL, fails integer NOT NULL, degraded integer NOT NULL,
  PRIMARY KEY (leg, environment, hour))""").format(hourly=hourly),
        sql.SQL("CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
                "SET search_path = pg_catalog AS {body}").format(fn=function, body=sql.Literal(body.as_string(conn))),
        sql.SQL("DROP TRIGGER IF EXISTS {trigger} ON {table}").format(
            trigger=sql.Identifier(f"{name[:40]}_hourly_trg"), table=table_identifier(table)),
        sql.SQL("CREATE TRIGGER {trigger} AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {fn}()").format(
            trigger=sql.Identifier(f"{name[:40]}_hourly_trg"), table=table_identifier(table), fn=function),
        # Backfill what the table already holds (an audit table from before the roll-up).
        sql.SQL("""INSERT INTO {hourly} (leg, environment, hour, runs, up, fails, degraded)
SELECT leg, coalesce(environment, ''), date_trunc('hour', created_at AT TIME ZONE 'UTC'), count(*),
       count(*) FILTER (WHERE result IN ('pass', 'degraded')), count(*) FILTER (WHERE result = 'fail'),
       count(*) FILTER (WHERE result = 'degraded')
FROM {table} GROUP BY 1, 2, 3""").format(hourly=hourly, table=table_identifier(table)),
    ]


def regclass(conn: Any, table: str) -> Any:
    """The table's oid, or None; the name is quoted exactly as the inserts quote it."""
    return conn.execute("SELECT to_regclass(%s)", (table_identifier(table).as_string(conn),)).fetchone()[0]


def migrate(database_url: Secret, table: str) -> None:
    """Create the audit table if missing; refuse an existing one the probe cannot write.

    Raises ``AuditSchemaError`` naming the column, type or privilege; a connection error
    propagates (the caller treats it as an outage).
    """
    variable = "PAYMENT_PROBE_AUDIT_TABLE"
    with db.session(database_url) as conn:
        try:
            if regclass(conn, table) is None:
                # Create only when missing: a least-privilege role may insert but not CREATE.
                conn.execute(create_table_sql(table))
                for statement in index_sql(table):
                    conn.execute(statement)
        except Exception as exc:
            if db.is_permanent(exc):
                raise AuditSchemaError(f"{variable}: cannot create table {table} ({db.describe(exc)})") from None
            raise
        ensure_rollup(conn, table)
        _add_location(conn, table)
        schema, _, name = table.rpartition(".")
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
            "AND table_schema = coalesce(nullif(%s, ''), current_schema())",
            (name, schema),
        ).fetchall()
        can_insert = conn.execute(
            "SELECT has_table_privilege(%s::regclass, 'INSERT')", (table_identifier(table).as_string(conn),)
        ).fetchone()[0]
    present = {r[0]: r[1] for r in rows}
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    if missing:
        raise AuditSchemaError(f"{variable}: table {table} lacks columns {', '.join(missing)}")
    wrong = [f"{c} is {present[c]}" for c in REQUIRED_COLUMNS if present[c] not in COLUMN_TYPES[c]]
    if wrong:
        raise AuditSchemaError(f"{variable}: table {table} has columns of the wrong type: {'; '.join(wrong)}")
    if not can_insert:
        raise AuditSchemaError(f"{variable}: the database role lacks INSERT on table {table}")


def _add_location(conn: Any, table: str) -> None:
    """An audit table from before locations gains its ``location`` column (SPEC 15), when this role
    may; otherwise the column check below names it (run ``payment-probe migrate`` as the owner)."""
    from psycopg import sql

    present = conn.execute("SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'location' "
                           "AND NOT attisdropped", (table_identifier(table).as_string(conn),)).fetchone()
    if present:
        return  # no ALTER (and its lock) on every start
    try:
        with conn.transaction():
            conn.execute(sql.SQL("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS location text").format(
                table=table_identifier(table)))
    except Exception as exc:
        if not db.is_permanent(exc):
            raise


def ensure_rollup(conn: Any, table: str) -> None:
    """Create the hourly roll-up (and the indexes) once, when this role may; without it the status
    page shows current states and incidents but no uptime figures (logged, never fatal)."""
    hourly = regclass(conn, hourly_table(table))
    schema_prefix, _, name = table.rpartition(".")
    by_result = regclass(conn, f"{schema_prefix + '.' if schema_prefix else ''}{name[:40]}_leg_result_idx")
    if by_result is not None and hourly is not None and conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'environment' AND NOT attisdropped",
        (hourly,),
    ).fetchone():
        return  # current: roll-up by environment, and the index the status page's "since" walks
    schema = conn.execute("SELECT current_schema()").fetchone()[0]
    try:
        with conn.transaction():
            for statement in [*index_sql(table), *rollup_sql(conn, table, schema)]:
                conn.execute(statement)
    except Exception as exc:
        if not db.is_permanent(exc):
            raise
        log.warning("hourly roll-up of %s not created (%s): the status page will show no uptime figures "
                    "until `payment-probe migrate` runs as the table's owner", table, db.describe(exc))


def row_of(outcome: Outcome) -> dict[str, Any]:
    metadata = dict(outcome.metadata)
    metadata.update({"detail": outcome.detail, "probe_version": __version__})
    if outcome.maintenance:
        metadata["maintenance"] = True
    if outcome.trace_id:
        metadata["trace_id"] = outcome.trace_id
    metadata["attempts"] = outcome.attempts
    if outcome.recovered_from:
        metadata["recovered_from"] = outcome.recovered_from
    return {
        "id": outcome.id,
        "created_at": outcome.timestamp_iso,
        "actor": ACTOR,
        "action": ACTION,
        "run_id": outcome.run_id,
        "leg": outcome.leg,
        "result": outcome.result,
        "severity": outcome.severity,
        "reason": outcome.reason,
        "latency_ms": None if outcome.latency_seconds is None else round(outcome.latency_seconds * 1000, 3),
        "environment": outcome.environment,
        "metadata": metadata,
        "location": outcome.location,
    }


def insert_sql(table: str) -> Any:
    from psycopg import sql

    return sql.SQL(
        "INSERT INTO {table} (id, created_at, actor, action, run_id, leg, result, severity, reason, "
        "latency_ms, environment, metadata, location) VALUES (%(id)s, %(created_at)s, %(actor)s, %(action)s, "
        "%(run_id)s, %(leg)s, %(result)s, %(severity)s, %(reason)s, %(latency_ms)s, %(environment)s, "
        "%(metadata)s, %(location)s) ON CONFLICT (id) DO NOTHING"
    ).format(table=table_identifier(table))


def _params(row: dict[str, Any]) -> dict[str, Any]:
    # A row spooled by a version from before locations has none: it lands without one.
    return {**row, "metadata": json.dumps(row["metadata"]), "location": row.get("location")}


class AuditSink:
    name = "audit"

    def __init__(
        self, database_url: Secret, table: str, spool_path: Path,
        *, on_error: Callable[[str], None] | None = None, on_dropped: Callable[[int], None] | None = None,
        max_spool_rows: int | None = None,
    ) -> None:
        self._database_url = database_url
        self.table = table
        self.spool = Spool(spool_path, max_spool_rows) if max_spool_rows else Spool(spool_path)
        self.dead_letter = Spool(spool_path.with_name(spool_path.stem + ".dead-letter.jsonl"),
                                 self.spool.max_rows)  # the same bound; drops past it are counted
        self._on_error = on_error or (lambda _sink: None)
        self._on_dropped = on_dropped or (lambda _n: None)
        self.in_outage = False
        self._migrated_after_undefined = False

    def attempt(self, attempt: Outcome) -> None:
        """Attempts are the metrics' to count; this sink keeps outcomes."""

    def record(self, outcome: Outcome) -> None:
        pass

    def flush(self, outcomes: Sequence[Outcome]) -> None:
        """Write spooled rows then these; the spool is touched only when there is one or a write fails."""
        new_rows = [row_of(o) for o in outcomes]
        spooled = self._read_spool()
        pending = spooled + new_rows
        if not pending:
            return
        unwritten = self._write(pending)
        if unwritten:
            self._keep(unwritten, had_spool=bool(spooled))
            return
        if spooled:
            self._clear_spool()
        if self.in_outage:
            self.in_outage = False
            log.warning("audit database reachable again; %d rows written", len(pending))
        log.info("wrote %d audit rows: %s", len(pending), ",".join(str(r["id"]) for r in pending))

    # ---- the database ----------------------------------------------------------------------
    def _write(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert ``rows``; return those that must wait for the database (empty: all handled)."""
        import psycopg

        try:
            # A run's rows insert in milliseconds: 5 s is plenty and bounds what a database that
            # freezes mid-flush costs the run; a spool replay of many rows gets up to the full guard.
            budget = min(db.GUARD_SECONDS, db.STATEMENT_GUARD_SECONDS + len(rows) / 1000)
            with db.session(self._database_url, autocommit=False, application_name="payment-probe-audit",
                            budget=budget) as conn, conn.cursor() as cur:
                cur.executemany(insert_sql(self.table), [_params(r) for r in rows])
                conn.commit()
            return []
        except psycopg.errors.UndefinedTable as exc:
            if self._migrated_after_undefined:
                return self._write_one_by_one(rows, exc)
            self._migrated_after_undefined = True
            try:
                migrate(self._database_url, self.table)  # a laptop run against a fresh database
            except Exception as migrate_exc:
                return self._outage(rows, migrate_exc) if not self._is_permanent(migrate_exc) else \
                    self._write_one_by_one(rows, migrate_exc)
            return self._write(rows)
        except Exception as exc:
            if self._is_permanent(exc):
                return self._write_one_by_one(rows, exc)
            return self._outage(rows, exc)

    @staticmethod
    def _is_permanent(exc: BaseException) -> bool:
        return isinstance(exc, AuditSchemaError) or db.is_permanent(exc)

    def _write_one_by_one(self, rows: list[dict[str, Any]], cause: BaseException) -> list[dict[str, Any]]:
        """A batch the database rejected for good: land what it takes, dead-letter the rest."""
        self._on_error("audit")
        log.error("audit table %s rejects rows (%s): trying them one by one", self.table, db.describe(cause))
        rejected: list[dict[str, Any]] = []
        try:
            with db.session(self._database_url, application_name="payment-probe-audit") as conn:
                for index, row in enumerate(rows):
                    try:
                        with conn.transaction():
                            conn.execute(insert_sql(self.table), _params(row))
                    except Exception as exc:
                        if not db.is_permanent(exc):
                            self._dead_letter(rejected, cause)
                            return self._outage(rows[index:], exc)
                        rejected.append({**row, "rejected_because": db.describe(exc)})
        except Exception as exc:
            self._dead_letter(rejected, cause)
            done = len(rejected)
            return self._outage(rows[done:], exc) if not db.is_permanent(exc) else self._dead_all(rows[done:], exc)
        self._dead_letter(rejected, cause)
        return []

    def _dead_all(self, rows: list[dict[str, Any]], exc: BaseException) -> list[dict[str, Any]]:
        self._dead_letter([{**r, "rejected_because": db.describe(exc)} for r in rows], exc)
        return []

    def _dead_letter(self, rows: list[dict[str, Any]], cause: BaseException) -> None:
        if not rows:
            return
        try:
            with self.dead_letter.locked():
                dropped = self.dead_letter.write(self.dead_letter.read() + rows)
        except OSError as exc:
            log.error("audit dead-letter file %s unusable (%s): %d rejected rows lost",
                      self.dead_letter.path, type(exc).__name__, len(rows))
            self._on_dropped(len(rows))
            return
        # A count and the first and last id, never a list: a run of thousands must not be one huge line.
        log.error("audit table %s rejected %d row(s) for good (%s); kept in %s (ids %s … %s)", self.table,
                  len(rows), db.describe(cause), self.dead_letter.path, rows[0]["id"], rows[-1]["id"])
        if dropped:
            self._on_dropped(dropped)
            log.error("audit dead-letter file %s is full (%d rows): dropped the %d oldest", self.dead_letter.path,
                      self.dead_letter.max_rows, dropped)

    def _outage(self, rows: list[dict[str, Any]], exc: BaseException) -> list[dict[str, Any]]:
        self._on_error("audit")
        if not self.in_outage:
            self.in_outage = True
            log.error("audit database unreachable (%s); spooling rows to %s (%d pending)",
                      type(exc).__name__, self.spool.path, len(rows))
        return rows

    # ---- the spool -------------------------------------------------------------------------
    def _read_spool(self) -> list[dict[str, Any]]:
        if not self.spool.path.exists():
            return []
        try:
            with self.spool.locked():
                return self.spool.read()
        except OSError as exc:
            log.error("audit spool %s unreadable (%s); writing new rows straight to the database",
                      self.spool.path, type(exc).__name__)
            return []

    def _clear_spool(self) -> None:
        try:
            with self.spool.locked():
                self.spool.write([])
        except OSError as exc:
            log.error("audit spool %s could not be cleared (%s); its rows are already written "
                      "and will be skipped on replay", self.spool.path, type(exc).__name__)

    def _keep(self, rows: list[dict[str, Any]], *, had_spool: bool) -> None:
        try:
            with self.spool.locked():
                dropped = self.spool.write(rows)
        except OSError as exc:  # the failed write that brought us here is already counted
            self._on_dropped(len(rows))
            log.error("audit spool %s unusable (%s): %d rows could not be kept",
                      self.spool.path, type(exc).__name__, len(rows))
            return
        if dropped:
            self._on_dropped(dropped)
            log.error("audit spool %s is full (%d rows): dropped the %d oldest", self.spool.path,
                      self.spool.max_rows, dropped)
