"""The runner's own log lines: JSON on stderr, like the outcome lines, so one parser reads both."""

from __future__ import annotations

import json
import logging
import sys

from runner.timefmt import utc_iso


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "timestamp": utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            data["exception"] = record.exc_info[0].__name__
        return json.dumps(data, separators=(",", ":"))


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("payment_probe")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
