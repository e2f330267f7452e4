"""Maintenance windows: "we are deploying the billing API for 30 minutes", said once, seen by every replica.

Windows live in Postgres (``payment_probe_maintenance``), so every replica exports the same
``instant_payment_probe_maintenance`` and the status page shows them. The legs keep running
during a window and their outcomes are recorded with ``maintenance: true``; only the paging
alerts are silenced (the alert rules read the gauge). A window always has an end: at most 24 h.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from synthetics import db
from synthetics.secret import Secret

TABLE_DDL = """
CREATE TABLE IF NOT EXISTS payment_probe_maintenance (
  id         bigserial PRIMARY KEY,
  starts_at  timestamptz NOT NULL,
  ends_at    timestamptz NOT NULL,
  reason     text NOT NULL,
  opened_by  text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK (ends_at > starts_at)
)"""
MAX_SECONDS = 24 * 3600
MAX_STARTS_IN_SECONDS = 7 * 24 * 3600
MAX_REASON = 200
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class MaintenanceError(ValueError):
    """Bad input to a ``maintenance`` command: exit 2, one line."""


@dataclass(frozen=True)
class Window:
    id: int
    starts_at: datetime
    ends_at: datetime
    reason: str
    opened_by: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "starts_at": self.starts_at.isoformat(), "ends_at": self.ends_at.isoformat(),
                "reason": self.reason, "opened_by": self.opened_by}


def parse_duration(text: str, what: str = "--for") -> float:
    """``30m``, ``2h``, ``1h30m``, ``90s`` → seconds; at most 24 h for a window's length."""
    match = _DURATION.match(text.strip()) if text else None
    if not match or not any(match.groups()):
        raise MaintenanceError(f"{what}: expected a duration like 30m, 2h or 1h30m, got {text!r}")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def check_starts_in(seconds: float) -> float:
    """A window is planned at most 7 days ahead: ``2000000h`` is a typo, not a plan."""
    if seconds > MAX_STARTS_IN_SECONDS:
        raise MaintenanceError("--starts-in: a window starts at most 7 days ahead (168h)")
    return seconds


def check_window(length_seconds: float, reason: str) -> str:
    if length_seconds <= 0:
        raise MaintenanceError("--for: a window must last more than 0 seconds")
    if length_seconds > MAX_SECONDS:
        raise MaintenanceError("--for: a window lasts at most 24h")
    reason = reason.strip()
    if not reason:
        raise MaintenanceError("--reason: say why (it is shown on the status page and in every outcome)")
    if len(reason) > MAX_REASON:
        raise MaintenanceError(f"--reason: at most {MAX_REASON} characters, got {len(reason)}")
    return reason


def _exists(conn: Any) -> bool:
    return conn.execute("SELECT to_regclass('payment_probe_maintenance')").fetchone()[0] is not None


def ensure_table(conn: Any) -> None:
    if not _exists(conn):
        conn.execute(TABLE_DDL)


def start(database_url: Secret, length_seconds: float, reason: str, opened_by: str,
          starts_in_seconds: float = 0.0) -> Window:
    reason = check_window(length_seconds, reason)
    with db.session(database_url) as conn:
        ensure_table(conn)
        row = conn.execute(
            "INSERT INTO payment_probe_maintenance (starts_at, ends_at, reason, opened_by) "
            "VALUES (now() + make_interval(secs => %s), now() + make_interval(secs => %s), %s, %s) "
            "RETURNING id, starts_at, ends_at, reason, opened_by",
            (starts_in_seconds, starts_in_seconds + length_seconds, reason, opened_by),
        ).fetchone()
    return Window(*row)


_COLUMNS = "id, starts_at, ends_at, reason, opened_by"


def end(database_url: Secret, window_id: int | None = None) -> tuple[str, list[Window]]:
    """End the open window(s) now, or else cancel the next upcoming one; ``window_id`` names one.

    Returns what was done (``ended`` or ``cancelled``) and the windows it was done to; raises
    ``MaintenanceError`` when there is nothing to end. An upcoming window that is cancelled never
    opened, so its row goes: nothing was silenced by it.
    """
    with db.session(database_url) as conn:
        ensure_table(conn)
        only = "" if window_id is None else " AND id = %(id)s"
        ended = conn.execute(
            f"UPDATE payment_probe_maintenance SET ends_at = now() "
            f"WHERE starts_at <= now() AND ends_at > now(){only} RETURNING {_COLUMNS}", {"id": window_id},
        ).fetchall()
        if ended:
            return "ended", [Window(*r) for r in ended]
        pick = "id = %(id)s" if window_id is not None else (
            "id = (SELECT id FROM payment_probe_maintenance WHERE starts_at > now() ORDER BY starts_at, id LIMIT 1)")
        cancelled = conn.execute(
            f"DELETE FROM payment_probe_maintenance WHERE starts_at > now() AND {pick} RETURNING {_COLUMNS}",
            {"id": window_id},
        ).fetchall()
    if cancelled:
        return "cancelled", [Window(*r) for r in cancelled]
    if window_id is not None:
        raise MaintenanceError(f"maintenance end: no open or upcoming maintenance window #{window_id}")
    raise MaintenanceError("maintenance end: no maintenance window is open or upcoming")


def open_and_upcoming(conn: Any) -> list[Window]:
    """Windows open now or starting later, soonest first; none when the table does not exist yet."""
    if not _exists(conn):
        return []
    rows = conn.execute(
        "SELECT id, starts_at, ends_at, reason, opened_by FROM payment_probe_maintenance "
        "WHERE ends_at > now() ORDER BY starts_at"
    ).fetchall()
    return [Window(*r) for r in rows]


def list_windows(database_url: Secret) -> list[Window]:
    with db.session(database_url) as conn:
        return open_and_upcoming(conn)


@dataclass(frozen=True)
class Reading:
    """The window open when the database was read, and how long it had left on the database's
    own clock: a replica that then loses the database still ends it on time, by itself."""

    window: Window | None
    seconds_left: float


def open_now(database_url: Secret) -> Reading:
    """The window open right now (the one ending last), if any. Raises on a database error."""
    with db.session(database_url) as conn:
        if not _exists(conn):
            return Reading(None, 0.0)
        row = conn.execute(
            f"SELECT {_COLUMNS}, extract(epoch FROM ends_at - now())::float8 FROM payment_probe_maintenance "
            "WHERE starts_at <= now() AND ends_at > now() ORDER BY ends_at DESC LIMIT 1"
        ).fetchone()
    return Reading(None, 0.0) if row is None else Reading(Window(*row[:5]), float(row[5]))
