"""What every provider module gives the legs: events, and the headers that deliver them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from synthetics.secret import Secret


@dataclass(frozen=True)
class Event:
    """One delivery's bytes, serialized once, and its provider event id: a retry re-sends exactly
    these bytes and this id; only a scheme that signs time signs afresh."""

    body: bytes
    event_id: str


class Provider(Protocol):
    name: str
    default_path: str  # PAYMENT_PROBE_WEBHOOK_PATH when unset
    signs_time: bool  # a signed timestamp: stale deliveries can be tested (webhook_security (c))
    secret_variable: str  # named in config_missing:<VARIABLE> when no secret is set
    signature_header: str  # the header that carries the signature: never printed, whatever it holds

    def new_subscription_id(self) -> str:
        """A fresh subscription id in the provider's format (``sub_…``)."""
        ...

    def upgrade_event(self, team_id: str, plan_id: str, now: float, subscription_id: str | None = None) -> Event:
        """The event that upgrades ``team_id`` to ``plan_id``'s tier, for ``subscription_id`` (fresh if None)."""
        ...

    def cancel_event(self, team_id: str, plan_id: str, now: float, subscription_id: str | None = None) -> Event:
        """The event that cancels ``team_id``'s subscription ``subscription_id`` to ``plan_id``: the one the
        upgrade named, so an API that keys on the subscription applies it (SPEC 14)."""
        ...

    def probe_event(self, now: float) -> Event:
        """A valid-JSON body that is not a real event: what the unsigned delivery carries."""
        ...

    def delivery_headers(self, event: Event, at: int) -> dict[str, str]:
        """The unsigned headers every delivery of ``event`` carries (its id, its time)."""
        ...

    def forged_key(self) -> str:
        """A random key in the scheme's secret format: what an attacker without the secret signs with."""
        ...

    def signature_headers(self, key: str, event: Event, at: int) -> dict[str, str]:
        """The headers that sign ``event`` under ``key`` at unix time ``at`` (ignored when the
        scheme does not sign time). ``key`` is the secret's value: call inside the sender only."""
        ...


def sign(provider: Provider, secret: Secret, event: Event, at: int) -> dict[str, str]:
    """Signature headers for ``event``; the secret is revealed here, inside the call that uses it."""
    return provider.signature_headers(secret.reveal(), event, at)


def forged(provider: Provider, event: Event, at: int) -> dict[str, str]:
    """Right format, random key: what an attacker who does not know the secret can send."""
    return provider.signature_headers(provider.forged_key(), event, at)
