"""Audit rows in Postgres, one per outcome, spooled to disk while the database is away.

Rows carry the outcome's id as primary key and are inserted with ``ON CONFLICT DO NOTHING``:
a replay after an ambiguous commit can never duplicate a row. Spooled rows go in first, in
the order they were produced. An outage is logged once when it starts and once when it
ends, and counted every time a write fails.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runner.signals.outcome import Outcome
from runner.signals.spool import Spool
from synthetics import __version__

log = logging.getLogger("payment_probe.audit")

ACTOR = "system:payment_probe"
ACTION = "payment_probe.leg_outcome"
REQUIRED_COLUMNS = (
    "id", "created_at", "actor", "action", "run_id", "leg", "result", "severity", "reason",
    "latency_ms", "environment", "metadata",
)
CONNECT_TIMEOUT_SECONDS = 5


class AuditSchemaError(RuntimeError):
    """The audit table exists but lacks columns the probe writes."""


def create_table_sql(table: str) -> str:
    return f"""
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
  metadata    jsonb NOT NULL DEFAULT '{{}}'::jsonb
)"""


def _connect(database_url: str) -> Any:
    import psycopg  # optional dependency, imported where it is needed

    return psycopg.connect(
        database_url, autocommit=False, connect_timeout=CONNECT_TIMEOUT_SECONDS,
        options="-c statement_timeout=10000", application_name="payment-probe-audit",
    )


def migrate(database_url: str, table: str) -> None:
    """Create the audit table if missing; refuse an existing one that lacks needed columns."""
    with _connect(database_url) as conn:
        # Create only when missing: a least-privilege role may insert but not CREATE.
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
            conn.execute(create_table_sql(table))
        schema, _, name = table.rpartition(".")
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "AND table_schema = coalesce(nullif(%s, ''), current_schema())",
            (name, schema),
        ).fetchall()
        conn.commit()
    present = {r[0] for r in rows}
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    if missing:
        raise AuditSchemaError(
            f"PAYMENT_PROBE_AUDIT_TABLE: table {table} lacks columns {', '.join(missing)}"
        )


def row_of(outcome: Outcome) -> dict[str, Any]:
    metadata = dict(outcome.metadata)
    metadata.update({"detail": outcome.detail, "probe_version": __version__})
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
    }


class AuditSink:
    name = "audit"

    def __init__(
        self, database_url: str, table: str, spool_path: Path,
        *, on_error: Callable[[str], None] | None = None, max_spool_rows: int | None = None,
    ) -> None:
        self._database_url = database_url
        self.table = table
        self.spool = Spool(spool_path, max_spool_rows) if max_spool_rows else Spool(spool_path)
        self._on_error = on_error or (lambda _sink: None)
        self.in_outage = False

    def record(self, outcome: Outcome) -> None:
        pass

    def flush(self, outcomes: Sequence[Outcome]) -> None:
        """Write spooled rows then these; on any database error keep them all on disk."""
        new_rows = [row_of(o) for o in outcomes]
        try:
            with self.spool.locked():
                pending = self.spool.read() + new_rows
                if not pending:
                    return
                try:
                    self._insert(pending)
                except Exception as exc:
                    self._note_outage(exc, len(pending))
                    self.spool.write(pending)
                    return
                self.spool.write([])
                log.info("wrote %d audit rows: %s", len(pending), ",".join(str(r["id"]) for r in pending))
        except OSError as exc:
            self._on_error("audit")
            log.error("audit spool %s unusable (%s): %d rows could not be kept",
                      self.spool.path, type(exc).__name__, len(new_rows))
            return
        if self.in_outage:
            self.in_outage = False
            log.warning("audit database reachable again; %d rows written", len(pending))

    def _note_outage(self, exc: Exception, pending: int) -> None:
        self._on_error("audit")
        if not self.in_outage:
            self.in_outage = True
            log.error("audit database unreachable (%s); spooling rows to %s (%d pending)",
                      type(exc).__name__, self.spool.path, pending)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        import psycopg

        try:
            self._insert_once(rows)
        except psycopg.errors.UndefinedTable:
            migrate(self._database_url, self.table)  # a laptop run against a fresh database
            self._insert_once(rows)

    def _insert_once(self, rows: list[dict[str, Any]]) -> None:
        with _connect(self._database_url) as conn:
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {self.table} (id, created_at, actor, action, run_id, leg, result, "
                    "severity, reason, latency_ms, environment, metadata) VALUES (%(id)s, "
                    "%(created_at)s, %(actor)s, %(action)s, %(run_id)s, %(leg)s, %(result)s, "
                    "%(severity)s, %(reason)s, %(latency_ms)s, %(environment)s, %(metadata)s::jsonb) "
                    "ON CONFLICT (id) DO NOTHING",
                    [{**r, "metadata": json.dumps(r["metadata"])} for r in rows],
                )
            conn.commit()
