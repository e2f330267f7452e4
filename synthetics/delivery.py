"""Posting webhook events as the configured provider delivers them (SPEC section 14).

The legs say what to deliver (an event, signed, forged, unsigned or stale); the provider module
says how its scheme frames it. A signed delivery's headers are computed inside the HTTP client at
send time, so neither the secret nor a valid signature ever sits in a leg's locals or a report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from synthetics.config import ProbeConfig
from synthetics.http import ProbeClient, ProbeResponse
from synthetics.providers import PROVIDERS, Event, Provider
from synthetics.providers.base import forged, sign
from synthetics.secret import Secret

Signature = Literal["valid", "forged", "none"]


def provider_of(config: ProbeConfig) -> Provider:
    return PROVIDERS[config.provider]


def deliver(client: ProbeClient, config: ProbeConfig, event: Event, signature: Signature, *,
            secret: Secret | None = None, at: int | None = None,
            on_status: Callable[[int], None] | None = None) -> ProbeResponse:
    """POST ``event`` to the webhook path with the scheme's headers at unix time ``at`` (now)."""
    provider = provider_of(config)
    when = int(time.time()) if at is None else at
    headers = provider.delivery_headers(event, when)
    if signature == "forged":
        headers.update(forged(provider, event, when))
    signer = None
    if signature == "valid":
        if secret is None:
            raise ValueError("a valid signature needs the secret")
        signer = lambda: sign(provider, secret, event, when)  # noqa: E731 - called at send time only
    return client.request("POST", config.webhook_path, body=event.body, headers=headers, sign=signer,
                          on_status=on_status)
