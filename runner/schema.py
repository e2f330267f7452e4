"""The runner's own tables, prepared in one place for `payment-probe migrate` and for `run` at start."""

from __future__ import annotations

import logging

from runner import maintenance
from runner.audit_store import migrate
from runner.leadership import ensure_slots_table
from synthetics import db
from synthetics.secret import Secret

log = logging.getLogger("payment_probe.schema")

MIGRATION_LOCK_KEY = 7_305_218_416_005_123_002  # beside leadership's key: "payment-probe migration"


def prepare(database_url: Secret, audit_table: str) -> None:
    """Create the audit table (or check its columns) and the leadership table, when missing.

    Raises ``AuditSchemaError`` / ``SlotsTableError`` for what a retry cannot fix (a column, a
    type, a privilege); anything else means the database could not be reached.
    """
    # Replicas start together: concurrent CREATE TABLE IF NOT EXISTS races inside Postgres (a
    # unique violation on pg_type), so one replica prepares at a time, the others wait and find
    # the tables made. The lock is a session lock on its own connection, released on any exit.
    with db.session(database_url, budget=db.GUARD_SECONDS * 4) as lock:
        lock.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        ensure_slots_table(database_url)  # first: a role that can never claim a slot is the worse news
        migrate(database_url, audit_table)
        with db.session(database_url) as conn:
            try:
                maintenance.ensure_table(conn)
            except Exception as exc:
                if not db.is_permanent(exc):
                    raise
                log.warning("table payment_probe_maintenance not created (%s): maintenance windows are "
                            "unavailable until `payment-probe migrate` runs as an owner", db.describe(exc))
