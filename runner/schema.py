"""The runner's own tables, prepared in one place for `payment-probe migrate` and for `run` at start."""

from __future__ import annotations

from runner import maintenance
from runner.leadership import ensure_slots_table
from runner.signals.audit import migrate
from synthetics import db
from synthetics.secret import Secret


def prepare(database_url: Secret, audit_table: str) -> None:
    """Create the audit table (or check its columns) and the leadership table, when missing.

    Raises ``AuditSchemaError`` / ``SlotsTableError`` for what a retry cannot fix (a column, a
    type, a privilege); anything else means the database could not be reached.
    """
    migrate(database_url, audit_table)
    ensure_slots_table(database_url)
    with db.session(database_url) as conn:
        maintenance.ensure_table(conn)
