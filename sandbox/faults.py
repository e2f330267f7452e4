"""The sandbox's fault vocabulary: each name makes exactly one endpoint misbehave one way.

Besides the names SPEC section 7 requires, two families make table-driven tests cheap:
``<endpoint>_status_<NNN>`` answers that status with a small JSON error body, and
``<endpoint>_delay_<ms>`` answers correctly after that many milliseconds.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

NAMED_FAULTS = frozenset(
    {
        "checkout_500", "checkout_502_json", "checkout_502_html", "checkout_402", "checkout_404",
        "billing_500", "billing_html_200", "billing_401", "billing_429", "billing_slow",
        "billing_redirect",
        "invoices_500", "invoices_404", "invoices_hang", "invoices_huge", "invoices_trickle",
        "invoices_bad_utf8", "invoices_deep_json", "invoices_string_200",
        "webhook_accept_unsigned", "webhook_accept_forged", "webhook_wrong_rejection", "webhook_500",
        "upgrade_no_flip", "upgrade_flip_then_500", "upgrade_slow_flip",
        "webhook_accept_stale", "webhook_no_dedup", "cancel_ignored", "webhook_duplicate_409",
        # the sandbox as the payment provider (SPEC 17; sandbox.provider_api)
        "provider_endpoint_disabled", "provider_wrong_url", "provider_events_unsubscribed",
        "provider_deliveries_failing", "provider_secret_mismatch", "provider_card_declined",
    }
)

_FAMILY = re.compile(r"^(checkout|billing|invoices|webhook|provider)_(status|delay)_(\d{1,6})$")


class UnknownFault(ValueError):
    pass


def validate(name: str) -> str:
    if name in NAMED_FAULTS:
        return name
    match = _FAMILY.match(name)
    if match and (match.group(2) == "delay" or 100 <= int(match.group(3)) <= 599):
        return name
    raise UnknownFault(f"unknown fault {name!r}; known: {', '.join(sorted(NAMED_FAULTS))}")


class FaultSet:
    """The active faults, replaced atomically by ``POST /_sandbox/faults``."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._active: frozenset[str] = frozenset(validate(n) for n in names)

    def replace(self, names: Iterable[str]) -> None:
        checked = frozenset(validate(n) for n in names)
        with self._lock:
            self._active = checked

    @property
    def active(self) -> frozenset[str]:
        return self._active

    def __contains__(self, name: object) -> bool:
        return name in self._active

    def status_for(self, endpoint: str) -> int | None:
        return self._number(endpoint, "status")

    def delay_ms_for(self, endpoint: str) -> int | None:
        return self._number(endpoint, "delay")

    def _number(self, endpoint: str, kind: str) -> int | None:
        prefix = f"{endpoint}_{kind}_"
        for name in self._active:
            if name.startswith(prefix):
                return int(name[len(prefix):])
        return None
