"""One UTC timestamp format for every signal and page: ISO 8601 with a ``Z``, never a local time."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_iso(when: float | datetime, timespec: str = "milliseconds") -> str:
    """``2026-11-30T03:08:04.123Z`` from unix seconds or an aware datetime."""
    moment = datetime.fromtimestamp(when, UTC) if isinstance(when, int | float) else when.astimezone(UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")
