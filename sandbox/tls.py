"""The sandbox's HTTPS: a CA generated at start (trustme), a leaf of chosen lifetime, optional mTLS.

A platform team's billing API sits behind an internal CA; this makes one on loopback so the
``tls_certificate`` leg, ``PAYMENT_PROBE_CA_BUNDLE`` and the TLS phase are tested end to end.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class SandboxTLS:
    context: ssl.SSLContext
    ca_path: Path  # PEM of the CA that issued the server (and client) certificates
    not_after: dt.datetime  # the leaf's notAfter (UTC)
    client_cert_path: Path | None  # a client certificate+key PEM the CA issued, when mTLS is on
    client_key_path: Path | None


def make_tls(
    ca_out: Path, *, cert_days: float = 90, hostnames: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
    require_client_cert: bool = False,
) -> SandboxTLS:
    """Generate the CA and leaf; write the CA (and a client cert) next to ``ca_out``."""
    ca = trustme.CA(organization_name="payment-probe sandbox CA")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    not_after = now + dt.timedelta(days=cert_days)
    not_before = min(now, not_after) - dt.timedelta(days=1)
    leaf = ca.issue_cert(*hostnames, not_before=not_before, not_after=not_after)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    ca_out.parent.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(ca_out))
    client_cert = client_key = None
    if require_client_cert:
        ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
        issued = ca.issue_cert("payment-probe-client")
        client_cert = ca_out.with_name(ca_out.stem + "-client.pem")
        client_key = ca_out.with_name(ca_out.stem + "-client.key")
        issued.cert_chain_pems[0].write_to_path(str(client_cert))
        issued.private_key_pem.write_to_path(str(client_key))
    return SandboxTLS(context, ca_out, not_after, client_cert, client_key)
