"""A bounded on-disk queue of audit rows kept while the database is unreachable.

JSON Lines, rewritten whole through a temp file and ``rename`` (atomic on POSIX), under an
advisory file lock so two processes sharing the directory never interleave writes.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runner.signals.atomic import write_atomically

DEFAULT_MAX_ROWS = 50_000


class Spool:
    def __init__(self, path: Path, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self.path = path
        self.max_rows = max_rows
        self.dropped = 0  # rows pushed out by the bound, oldest first

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        rows = []
        for line in text.splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a torn line cannot happen with rename, but never crash on one
        return rows

    def write(self, rows: list[dict[str, Any]]) -> int:
        """Replace the spool's rows; returns how many of the oldest the bound dropped."""
        dropped = max(0, len(rows) - self.max_rows)
        if dropped:
            self.dropped += dropped
            rows = rows[-self.max_rows:]
        if not rows:
            self.path.unlink(missing_ok=True)
            return dropped
        write_atomically(self.path, "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows))
        return dropped
