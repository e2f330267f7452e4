"""How a leg says *why* it failed: pytest's own failure outcome, carrying a machine-readable reason.

``LegFailed`` is a ``pytest.fail.Exception`` raised with ``pytrace=False``: a failure the leg
raises on purpose already says everything, so pytest reports it as one line (the ``FAILED``
line, JUnit's message) and never prints the leg's frames or locals. A leg that raises anything
else is a bug in the probe: that keeps its traceback (``probe_error:<Type>``). The signals plugin
reads ``reason`` and ``severity`` off the exception; legs never import the plugin.
"""

from __future__ import annotations

from typing import NoReturn

import pytest


class LegFailed(pytest.fail.Exception):  # type: ignore[name-defined]
    """The contract is broken. ``reason`` is the token dashboards group by (``http_status:503``)."""

    def __init__(self, reason: str, detail: str = "", *, severity: str = "error") -> None:
        self.reason = reason
        self.detail = detail
        self.severity = severity
        super().__init__(f"{reason}: {detail}" if detail else reason, pytrace=False)


def is_critical(exc: BaseException | None) -> bool:
    """An attempt that ended ``critical``: never retried, never recovered (SPEC 15)."""
    return isinstance(exc, LegFailed) and exc.severity == "critical"


def not_critical(error: BaseException | None) -> bool:
    """The rerun condition every leg gets under plain pytest's ``--reruns``: a critical attempt is final."""
    return not is_critical(error)


def degrade(reason: str, detail: str = "") -> NoReturn:
    """End the leg as ``degraded``: a pytest skip whose message starts with the reason token."""
    pytest.skip(f"{reason} {detail}".strip())


def one_line(leg: str, result: str, severity: str, reason: str, detail: str) -> str:
    """``webhook_security fail (critical): unsigned_accepted — HTTP 200: ...``: the report line."""
    text = f"{leg} {result} ({severity}): {reason}"
    return f"{text} — {detail}" if detail else text
