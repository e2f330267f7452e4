"""Every log line on stderr is JSON and redacted: the runner's own and every library's (SPEC 10).

The handler sits on the root logger, so OpenTelemetry's exporter ("Transient error … retrying"),
urllib3 or psycopg write through the same formatter as the runner instead of Python's raw
last-resort handler; the formatter passes each message through the redactor of the session's
secrets (set once the configuration is read) and the secret shapes it knows (bearer tokens,
signatures, URL passwords), so no logger can print a key.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable

from runner.signals.redact import Redactor
from runner.timefmt import utc_iso


class JsonFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor(())

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # a library's bad format string must not lose the line
            message = str(record.msg)
        data = {
            "timestamp": utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": self.redactor.text(message),
        }
        if record.exc_info and record.exc_info[0] is not None:
            data["exception"] = record.exc_info[0].__name__
        return json.dumps(data, separators=(",", ":"))


_FORMATTER = JsonFormatter()


def configure_logging(level: int = logging.INFO) -> None:
    """JSON on stderr for every logger: the project's at ``level``, libraries' at WARNING and up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_FORMATTER)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    ours = logging.getLogger("payment_probe")
    ours.handlers[:] = []
    ours.setLevel(level)
    ours.propagate = True
    logging.captureWarnings(True)  # warnings.warn() of a library: a JSON line too, not a raw one


def redact_logs(secrets: Iterable[str]) -> None:
    """From now on every line is scrubbed of these values (the configuration's secrets)."""
    _FORMATTER.redactor = Redactor(secrets)
