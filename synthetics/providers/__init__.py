"""Webhook schemes, one module per provider behind one narrow interface (SPEC section 14).

As blackbox_exporter has one file per prober behind one ``ProbeFn``, each provider here is one
small module exposing a ``Provider``: how its events look, which headers carry the event id and
the signature, and how the signature is made. The legs speak only this interface, so a new
provider is one file and one row in ``PROVIDERS``. Signatures are our own few lines of HMAC (no
provider SDK at run time); the project's tests verify them with each provider's official library.
"""

from __future__ import annotations

from synthetics.providers.base import Event, Provider
from synthetics.providers.razorpay import RAZORPAY
from synthetics.providers.standard import STANDARD
from synthetics.providers.stripe import STRIPE

PROVIDERS: dict[str, Provider] = {p.name: p for p in (RAZORPAY, STRIPE, STANDARD)}

__all__ = ["PROVIDERS", "Event", "Provider"]
