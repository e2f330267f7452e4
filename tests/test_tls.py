"""TLS like production: a private CA, mutual TLS, certificate expiry, and phases at the socket.

Every case runs the real legs against the sandbox over real TLS on loopback, with
certificates a CA generated for the test (trustme), never a mock of ``ssl``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from runner.legrun import LegRunner
from runner.signals.controller import SignalsPlugin
from runner.signals.metrics import MetricsSink, ProbeMetrics
from sandbox.server import SandboxServer, SandboxSettings, start
from sandbox.tls import make_tls
from synthetics.config import ConfigError, load_config
from synthetics.wire import PHASES

from conftest import PLAN_ID, WEBHOOK_SECRET, Probe

HTTP_LEGS = ("checkout_reachable", "billing_state", "invoices_reachable", "webhook_security")
NOT_UPGRADE = "not upgrade_webhook_e2e and not webhook_replay"

MakeSandbox = Callable[..., Probe]


@pytest.fixture
def tls_probe(database_url: str, tmp_path: Path) -> Iterator[MakeSandbox]:
    servers: list[SandboxServer] = []

    def make(**tls: object) -> Probe:
        ca = tmp_path / f"ca-{len(servers)}.pem"
        server = start(SandboxSettings(database_url=database_url, webhook_secret=WEBHOOK_SECRET,
                                       plan_id_pro=PLAN_ID, tls=make_tls(ca, **tls)))  # type: ignore[arg-type]
        servers.append(server)
        return Probe(server, database_url, tmp_path)

    yield make
    for server in servers:
        server.stop()


def _results(outcomes: dict) -> dict[str, tuple[str, str]]:  # type: ignore[type-arg]
    return {leg: (o.result, o.reason) for leg, o in outcomes.items()}


def test_a_trusted_private_ca_passes_every_leg_with_five_phases(tls_probe: MakeSandbox) -> None:
    probe = tls_probe(cert_days=90)
    outcomes = probe.run()
    assert {leg: o.result for leg, o in outcomes.items()} == dict.fromkeys(outcomes, "pass")
    assert len(outcomes) == 7
    for leg in HTTP_LEGS:
        phases = outcomes[leg].phases
        assert set(phases) == set(PHASES)
        assert phases["tls"] > 0 and phases["connect"] > 0 and phases["processing"] > 0
        assert outcomes[leg].latency_seconds == pytest.approx(sum(phases.values()), abs=1e-5)  # 6-digit rounding
    assert outcomes["tls_certificate"].metadata["cert_days_left"] == 89


def test_the_expiry_gauge_is_the_leafs_not_after(tls_probe: MakeSandbox) -> None:
    probe = tls_probe(cert_days=40)
    registry = CollectorRegistry()
    plugin = SignalsPlugin([MetricsSink(ProbeMetrics(registry))])
    LegRunner(probe.config(), plugin, ["-k", "tls_certificate"], quiet=True).run("r-expiry")
    not_after = probe.sandbox.settings.tls.not_after  # type: ignore[union-attr]
    gauge = registry.get_sample_value("instant_payment_probe_tls_cert_expiry_timestamp_seconds")
    assert gauge == int(not_after.timestamp())
    assert registry.get_sample_value("instant_payment_probe_phase_seconds",
                                     {"leg": "tls_certificate", "phase": "tls"}) > 0


@pytest.mark.parametrize(("days", "env", "expected"), [
    (12.5, {}, ("degraded", "cert_expiring:12d")),
    (3.5, {}, ("fail", "cert_expiring:3d")),
    (7.5, {}, ("fail", "cert_expiring:7d")),  # "at most 7 days" fails: 7 is on the fail side of the line
    (8.5, {}, ("degraded", "cert_expiring:8d")),
    (25.5, {}, ("pass", "ok")),
    (25.5, {"PAYMENT_PROBE_CERT_WARN_DAYS": "30", "PAYMENT_PROBE_CERT_FAIL_DAYS": "10"}, ("degraded", "cert_expiring:25d")),
    (25.5, {"PAYMENT_PROBE_CERT_WARN_DAYS": "40", "PAYMENT_PROBE_CERT_FAIL_DAYS": "26"}, ("fail", "cert_expiring:25d")),
], ids=["12d-warn", "3d-fail", "7d-at-the-line", "8d-warn", "25d-ok", "warn-moved", "fail-moved"])
def test_certificate_expiry_thresholds(tls_probe: MakeSandbox, days: float, env: dict[str, str],
                                       expected: tuple[str, str]) -> None:
    probe = tls_probe(cert_days=days)
    outcome = probe.run(legs="tls_certificate", **env)["tls_certificate"]
    assert (outcome.result, outcome.reason) == expected
    # An expiring certificate is the certificate leg's news only: the other legs still pass.
    others = probe.run(legs=f"{NOT_UPGRADE} and not tls_certificate", **env)
    assert {o.result for o in others.values()} == {"pass"}


@pytest.mark.parametrize(("tls", "use_ca", "cause"), [
    ({}, False, "tls_error:untrusted"),
    ({"hostnames": ("billing.example.test",)}, True, "tls_error:hostname_mismatch"),
    ({"cert_days": -1}, True, "tls_error:expired"),
], ids=["ca-not-trusted", "wrong-host-name", "expired-leaf"])
def test_verification_failures_fail_every_leg(tls_probe: MakeSandbox, tls: dict[str, object], use_ca: bool,
                                              cause: str) -> None:
    probe = tls_probe(**tls)
    extra = {} if use_ca else {"PAYMENT_PROBE_CA_BUNDLE": ""}
    outcomes = probe.run(legs=NOT_UPGRADE, **extra)
    assert _results(outcomes) == dict.fromkeys([*HTTP_LEGS, "tls_certificate"], ("fail", cause))
    assert all(o.severity == "error" for o in outcomes.values())


def test_mutual_tls_with_and_without_the_client_certificate(tls_probe: MakeSandbox) -> None:
    probe = tls_probe(require_client_cert=True)
    tls = probe.sandbox.settings.tls
    assert tls is not None and tls.client_cert_path and tls.client_key_path
    with_cert = probe.run(legs=NOT_UPGRADE, PAYMENT_PROBE_CLIENT_CERT=str(tls.client_cert_path),
                          PAYMENT_PROBE_CLIENT_KEY=str(tls.client_key_path))
    assert {o.result for o in with_cert.values()} == {"pass"}
    without = probe.run(legs=f"{NOT_UPGRADE} and not tls_certificate")
    assert {o.result for o in without.values()} == {"fail"}
    assert all(o.reason.startswith("tls_error:") or o.reason == "connection_error" for o in without.values()), \
        _results(without)


def test_plain_http_is_not_https_and_has_no_tls_phase(probe: Probe, database_url: str) -> None:
    plain = start(SandboxSettings(database_url=database_url, webhook_secret=WEBHOOK_SECRET, plan_id_pro=PLAN_ID))
    try:
        outcomes = Probe(plain, database_url, probe.tmp_path).run(legs=NOT_UPGRADE)
    finally:
        plain.stop()
    assert (outcomes["tls_certificate"].result, outcomes["tls_certificate"].reason) == ("degraded", "not_https")
    for leg in HTTP_LEGS:
        assert outcomes[leg].result == "pass"
        assert outcomes[leg].phases["tls"] == 0.0 and outcomes[leg].phases["processing"] > 0


@pytest.mark.parametrize(("variable", "content"), [
    ("PAYMENT_PROBE_CA_BUNDLE", None),
    ("PAYMENT_PROBE_CA_BUNDLE", "not a certificate"),
    ("PAYMENT_PROBE_CLIENT_CERT", None),
    ("PAYMENT_PROBE_CLIENT_KEY", "not a key"),
])
def test_bad_tls_files_are_exit_2_naming_the_variable(tmp_path: Path, variable: str, content: str | None) -> None:
    ca = make_tls(tmp_path / "ca.pem", require_client_cert=True)
    env = {"PAYMENT_PROBE_ENABLED": "1", "PAYMENT_PROBE_BASE_URL": "https://127.0.0.1:1"}
    if variable == "PAYMENT_PROBE_CLIENT_KEY":
        env["PAYMENT_PROBE_CLIENT_CERT"] = str(ca.client_cert_path)
    path = tmp_path / "given.pem"
    if content is not None:
        path.write_text(content)
    env[variable] = str(path)
    with pytest.raises(ConfigError) as info:
        load_config(env)
    assert info.value.variable == variable
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PAYMENT_PROBE_", "RAZORPAY_", "NEW_RELIC_"))}
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "run", "--once"], env={**base, **env},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"payment-probe: {variable}: expected a")
