"""One prober per cluster: a Postgres advisory lock for leadership, a unique row per slot.

The lock lives on a dedicated session: when the leader dies its connection drops and the
lock with it, so another replica leads from the next slot. The per-slot row, inserted with
``ON CONFLICT DO NOTHING``, is the second guard (as in River's periodic jobs): two replicas
that both believe they lead still run a slot once.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from synthetics import db
from synthetics.config import DEFAULT_LOCATION
from synthetics.secret import Secret

log = logging.getLogger("payment_probe.leadership")

LOCK_KEY = 7_305_218_416_005_123_001  # fits in bigint; "payment-probe leader"
SLOTS_DDL = """
CREATE TABLE IF NOT EXISTS payment_probe_slots (
  slot_start timestamptz NOT NULL,
  location   text NOT NULL DEFAULT 'local',
  replica    text NOT NULL,
  claimed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (slot_start, location)
)"""
# A slots table from before locations: one slot row per slot, whatever the location.
SLOTS_BY_LOCATION = (
    "ALTER TABLE payment_probe_slots ADD COLUMN IF NOT EXISTS location text NOT NULL DEFAULT 'local'",
    "ALTER TABLE payment_probe_slots DROP CONSTRAINT IF EXISTS payment_probe_slots_pkey",
    "ALTER TABLE payment_probe_slots ADD PRIMARY KEY (slot_start, location)",
)


# Every other location's lock is the pair (LOCATION_LOCK_CLASS, its row's number in this table):
# Postgres' two-int advisory keys never meet the one-bigint key of ``local``, and a number per
# location can never collide as a hash of its name can (``0xyf3rpz5c`` and ``ga87t0m5rv`` share a
# crc32, so one location silently never led).
LOCATION_LOCK_CLASS = 0x5050_7262  # int4: "PPrb", payment-probe leadership by location
LOCATIONS_DDL = """
CREATE TABLE IF NOT EXISTS payment_probe_locations (
  location   text PRIMARY KEY,
  lock_id    integer GENERATED ALWAYS AS IDENTITY UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
)"""


def lock_statement(location: str, lock_id: int | None) -> tuple[str, tuple[int, ...]]:
    """Leadership per location (SPEC 15): each location's replicas contend for their own lock; the
    default location keeps the key it always had, so a rollout's old and new pods agree."""
    if location == DEFAULT_LOCATION:
        return "SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)
    assert lock_id is not None
    return "SELECT pg_try_advisory_lock(%s, %s)", (LOCATION_LOCK_CLASS, lock_id)


def location_lock_id(conn: Any, location: str) -> int:
    """The location's number, registered on first use (``ON CONFLICT DO NOTHING``: replicas race safely)."""
    if conn.execute("SELECT to_regclass('payment_probe_locations')").fetchone()[0] is None:
        conn.execute(LOCATIONS_DDL)
    conn.execute("INSERT INTO payment_probe_locations (location) VALUES (%s) ON CONFLICT (location) DO NOTHING",
                 (location,))
    return int(conn.execute("SELECT lock_id FROM payment_probe_locations WHERE location = %s",
                            (location,)).fetchone()[0])


class SlotsTableError(RuntimeError):
    """The role cannot create or use the slots table: no slot could ever be claimed (exit 2)."""


def ensure_slots_table(database_url: Secret) -> None:
    """Create the table when missing and check the rights a claim needs; ``SlotsTableError`` if not."""
    with db.session(database_url) as conn:
        try:
            _create_slots_table_if_missing(conn)
        except Exception as exc:
            if db.is_permanent(exc):
                raise SlotsTableError(
                    f"PAYMENT_PROBE_DATABASE_URL: table payment_probe_slots is missing (or lacks its location "
                    f"column) and the role cannot create it ({db.describe(exc)}); run `payment-probe migrate` as "
                    "its owner"
                ) from None
            raise
        rights = conn.execute(
            "SELECT has_table_privilege('payment_probe_slots', 'SELECT'), "
            "has_table_privilege('payment_probe_slots', 'INSERT'), "
            "has_table_privilege('payment_probe_slots', 'DELETE')"
        ).fetchone()
    lacking = [name for name, ok in zip(("SELECT", "INSERT", "DELETE"), rights, strict=True) if not ok]
    if lacking:
        raise SlotsTableError(
            f"PAYMENT_PROBE_DATABASE_URL: the database role lacks {', '.join(lacking)} on table payment_probe_slots"
        )


def _create_slots_table_if_missing(conn: Any) -> None:
    # Only when missing: a least-privilege role may use the tables but not CREATE.
    if conn.execute("SELECT to_regclass('payment_probe_locations') IS NULL AND "
                    "has_schema_privilege(current_schema(), 'CREATE')").fetchone()[0]:
        conn.execute(LOCATIONS_DDL)  # the location numbers (only locations other than ``local`` use them)
    if conn.execute("SELECT to_regclass('payment_probe_slots')").fetchone()[0] is None:
        conn.execute(SLOTS_DDL)
        return
    has_location = conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = 'payment_probe_slots'::regclass AND attname = 'location' "
        "AND NOT attisdropped").fetchone()
    if not has_location:
        with conn.transaction():
            for statement in SLOTS_BY_LOCATION:
                conn.execute(statement)


class Leadership:
    """Leader election per slot. While the database is unreachable, a replica that was leading
    keeps leading (nobody else can take the lock either), and a replica that has never reached
    the database runs too: probing the HTTP legs during a database outage is the point.
    """

    def __init__(self, database_url: Secret, replica: str, location: str = DEFAULT_LOCATION) -> None:
        self._database_url = database_url
        self.replica = replica
        self.location = location
        self._conn: Any = None
        self.leading = False
        self.ever_connected = False
        self._lock_id: int | None = None  # this location's number (payment_probe_locations)

    def _session(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop()
            self._conn = db.connect(self._database_url)
            self.ever_connected = True
            # A fresh session holds no lock yet, whatever we held before the connection broke.
            self.leading = False
            with db.guard(self._conn):
                _create_slots_table_if_missing(self._conn)  # in case the database was down at start
        return self._conn

    def _fallback(self, what: str, exc: Exception) -> bool:
        """An outage (or a frozen database, cut by the guard) falls back; a permanent error never runs."""
        if db.is_permanent(exc):
            log.error("%s refused by the database (%s): not running this slot; fix the role's rights",
                      what, db.describe(exc))
            return False
        self._drop()
        go = self.leading or not self.ever_connected
        log.warning("%s failed (%s); %s this slot", what, type(exc).__name__,
                    "running" if go else "not running")
        return go

    def is_leader(self) -> bool:
        """True while this replica holds the lock; takes it when it is free."""
        try:
            conn = self._session()
            with db.guard(conn, db.STATEMENT_GUARD_SECONDS):
                if self.leading:
                    conn.execute("SELECT 1")
                    return True
                if self.location != DEFAULT_LOCATION and self._lock_id is None:
                    self._lock_id = location_lock_id(conn, self.location)
                statement, key = lock_statement(self.location, self._lock_id)
                row = conn.execute(statement, key).fetchone()
            became = bool(row and row[0])
            if became:
                log.info("replica %s is now the leader", self.replica)
            self.leading = became
            return became
        except Exception as exc:
            return self._fallback("leadership check", exc)

    def claim(self, slot_start: float) -> bool:
        """Insert this slot's row; False when any replica already ran it or the insert is refused."""
        try:
            conn = self._session()
            with db.guard(conn, db.STATEMENT_GUARD_SECONDS):
                row = conn.execute(
                    "INSERT INTO payment_probe_slots (slot_start, location, replica) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING RETURNING slot_start",
                    (datetime.fromtimestamp(slot_start, UTC), self.location, self.replica),
                ).fetchone()
        except Exception as exc:
            return self._fallback("slot claim", exc)
        claimed = row is not None
        try:
            with db.guard(conn):
                conn.execute("DELETE FROM payment_probe_slots WHERE slot_start < now() - interval '7 days'")
        except Exception as exc:  # housekeeping only: the claim above already decided
            log.error("pruning old slot rows failed (%s)", db.describe(exc))
            if not db.is_permanent(exc):
                self._drop()
        return claimed

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._drop()
        self.leading = False
