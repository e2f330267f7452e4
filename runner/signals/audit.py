"""Audit rows in Postgres, one per outcome; spooled to disk only while the database is away.

Rows carry the outcome's id as primary key and are inserted with ``ON CONFLICT DO NOTHING``:
a replay after an ambiguous commit can never duplicate a row. Three ways a write ends:

- it lands (spooled rows first, in the order they were produced);
- the database is unreachable (no SQLSTATE: refused, reset, a frozen peer cut by the guard):
  the rows wait in the spool and land exactly once when it returns;
- the database rejects a row for good (privilege, a column of the wrong type): rows are then
  tried one by one, each rejected row goes to a dead-letter file beside the spool (logged at
  ERROR, counted) and never blocks the rows after it.

The table's shape and its migration are the audit store's (``runner.audit_store``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runner.audit_store import AuditSchemaError, migrate, table_identifier
from runner.signals.outcome import Outcome
from runner.signals.spool import Spool
from synthetics import __version__, db
from synthetics.secret import Secret

log = logging.getLogger("payment_probe.audit")

ACTOR = "system:payment_probe"
ACTION = "payment_probe.leg_outcome"
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
