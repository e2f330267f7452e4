"""The billing API's certificate: reported weeks before it expires, not on the day checkout breaks."""

from __future__ import annotations

import math
import ssl
import time

import pytest

from synthetics import reasons, wire
from synthetics.config import ProbeConfig
from synthetics.failures import LegFailed, degrade
from synthetics.plugin import LegRecord
from synthetics.tls import api_context


@pytest.mark.prod_safe
def test_tls_certificate(probe_config: ProbeConfig, leg_record: LegRecord) -> None:
    url = probe_config.base_url
    if not url:
        degrade(reasons.config_missing("PAYMENT_PROBE_BASE_URL"))
    if not url.startswith("https://"):
        degrade(reasons.NOT_HTTPS, "the base URL is http://: there is no certificate to check")
    # Verified exactly as the other legs verify: the same CA bundle and client certificate.
    context = api_context(probe_config.ca_bundle, probe_config.client_cert, probe_config.client_key)
    try:
        sock, _target, phases = wire.open_connection(url, probe_config.http_timeout_seconds, context)
    except wire.WireError as exc:
        leg_record.add_phases(exc.phases, False)
        raise LegFailed(exc.kind, f"handshake: {exc.detail}") from None
    try:
        certificate = sock.getpeercert() if isinstance(sock, ssl.SSLSocket) else None
    finally:
        sock.close()
    leg_record.add_phases(phases, True)
    if not certificate or "notAfter" not in certificate:
        raise LegFailed(reasons.tls_error("no_certificate"), "the server presented no certificate")
    not_after = ssl.cert_time_to_seconds(str(certificate["notAfter"]))
    days_left = math.floor((not_after - time.time()) / 86400)
    leg_record.note("cert_not_after", int(not_after))
    leg_record.note("cert_days_left", days_left)
    reason = reasons.cert_expiring(days_left)
    if days_left <= probe_config.cert_fail_days:
        raise LegFailed(reason, f"the certificate expires in {days_left} days (fail at {probe_config.cert_fail_days})")
    if days_left <= probe_config.cert_warn_days:
        degrade(reason, f"the certificate expires in {days_left} days (warn at {probe_config.cert_warn_days})")
