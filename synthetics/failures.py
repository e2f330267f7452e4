"""How a leg says *why* it failed: an assertion carrying a short machine-readable reason.

The signals plugin reads ``reason`` and ``severity`` off the exception; legs never import
the plugin, and a leg that simply raises still gets a reason (``probe_error:<Type>``).
"""

from __future__ import annotations

from typing import NoReturn

import pytest


class LegFailed(AssertionError):
    """The contract is broken. ``reason`` is the token dashboards group by (``http_status:503``)."""

    def __init__(self, reason: str, detail: str = "", *, severity: str = "error") -> None:
        self.reason = reason
        self.detail = detail
        self.severity = severity
        super().__init__(f"{reason}: {detail}" if detail else reason)


def degrade(reason: str, detail: str = "") -> NoReturn:
    """End the leg as ``degraded``: a pytest skip whose message starts with the reason token."""
    pytest.skip(f"{reason} {detail}".strip())
