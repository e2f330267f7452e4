"""The status classification shared by the three reachability legs (SPEC section 2's table).

One function, one table: every reachability leg judges a response the same way, so a
``pass`` on the dashboard means the same thing for checkout, billing and invoices.
"""

from __future__ import annotations

from typing import Literal

from synthetics import reasons
from synthetics.failures import LegFailed, degrade
from synthetics.http import ProbeResponse

Expect = Literal["object", "object_or_array"]

BLOCKED_BUT_ALIVE = frozenset({402, 409})
ROUTE_GONE = frozenset({404, 405})
REFUSED_PROBE = frozenset({401, 403, 429})


def judge_reachability(response: ProbeResponse, expect: Expect) -> None:
    """Return when the API is alive per the table; otherwise fail or degrade the leg."""
    status = response.status
    if 200 <= status < 300:
        body = response.json()
        if expect == "object" and not isinstance(body, dict):
            raise LegFailed(reasons.NOT_JSON, f"HTTP {status}: expected a JSON object")
        if expect == "object_or_array" and not isinstance(body, dict | list):
            raise LegFailed(reasons.NOT_JSON, f"HTTP {status}: expected a JSON object or array")
        return
    if 300 <= status < 400 and status != 304:  # 304 Not Modified is no redirect: it has no target
        where = response.headers.get("location", "")
        raise LegFailed(reasons.redirect(status), f"redirect to {where[:200]!r} (never followed)")
    if status in BLOCKED_BUT_ALIVE:
        return
    if status == 502:
        if _is_error_object(response):
            return
        raise LegFailed(reasons.http_status(502), "502 without a JSON error body")
    if status >= 500:
        raise LegFailed(reasons.http_status(status))
    if status in ROUTE_GONE:
        raise LegFailed(reasons.http_status(status), "the route is gone")
    if status in REFUSED_PROBE:
        degrade(reasons.http_status(status), "the API refused or rate-limited the probe's own credentials")
    if 400 <= status < 500:
        return
    raise LegFailed(reasons.http_status(status), "unexpected status")


def _is_error_object(response: ProbeResponse) -> bool:
    try:
        body = response.json()
    except LegFailed:
        return False
    return isinstance(body, dict) and "error" in body
