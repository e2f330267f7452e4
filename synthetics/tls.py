"""The billing API's TLS settings as one ``SSLContext``: a private CA, a client certificate.

They apply to the legs and to nothing else (the New Relic sink keeps the system store), and
verification is never switched off: no setting here can turn ``CERT_REQUIRED`` or the host
name check off. Contexts are built once per distinct setting and shared by every exchange.
"""

from __future__ import annotations

import functools
import ssl


class TLSConfigError(ValueError):
    """A CA bundle or client certificate that OpenSSL refuses; ``variable`` names the culprit."""

    def __init__(self, variable: str) -> None:
        super().__init__(variable)
        self.variable = variable


@functools.lru_cache(maxsize=8)
def api_context(ca_bundle: str | None, client_cert: str | None, client_key: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if client_cert:
        try:
            context.load_cert_chain(client_cert, client_key)
        except (ssl.SSLError, OSError, ValueError):
            raise TLSConfigError("PAYMENT_PROBE_CLIENT_KEY" if client_key else "PAYMENT_PROBE_CLIENT_CERT") from None
    return context


@functools.lru_cache(maxsize=4)
def provider_context(ca_bundle: str | None) -> ssl.SSLContext:
    """The payment provider's API: the system store (api.stripe.com has a public certificate), plus the
    billing API's CA bundle when one is set (the sandbox, serving both, has a private CA)."""
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def checked_context(ca_bundle: str | None, client_cert: str | None, client_key: str | None) -> ssl.SSLContext:
    """``api_context`` with a refused CA bundle reported under its variable."""
    try:
        return api_context(ca_bundle, client_cert, client_key)
    except TLSConfigError:
        raise
    except (ssl.SSLError, OSError, ValueError):
        raise TLSConfigError("PAYMENT_PROBE_CA_BUNDLE") from None
