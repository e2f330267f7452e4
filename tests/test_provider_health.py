"""provider_webhook_health (SPEC 17) against the sandbox as the payment provider: Stripe's webhook endpoints
and undelivered events (paginated), Razorpay's partner webhooks API; each failure mode the spec names made
real by a sandbox fault, with its exact outcome."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from runner.legrun import LegRunner
from runner.signals.controller import SignalsPlugin
from runner.signals.metrics import MetricsSink, ProbeMetrics
from runner.signals.outcome import Outcome
from runner.signals.sink import MemorySink
from sandbox.server import SandboxSettings, start
from synthetics.config import ConfigError, load_config
from synthetics.registry import LEGS

from conftest import PLAN_ID, WEBHOOK_SECRET, Probe, provider_env

LEG = "provider_webhook_health"


@pytest.fixture(params=["stripe", "razorpay"])
def provider_probe(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Probe]:
    server = start(SandboxSettings(database_url=database_url, webhook_secret=WEBHOOK_SECRET, plan_id_pro=PLAN_ID,
                                   provider=request.param))
    try:
        yield Probe(server, database_url, tmp_path)
    finally:
        server.stop()


def _leg(probe: Probe, *faults: str, **extra: str) -> tuple[Outcome, ProbeMetrics]:
    probe.sandbox.faults.replace(faults)
    config = probe.config(**{"PAYMENT_PROBE_PROVIDER": probe.sandbox.settings.provider, "PAYMENT_PROBE_LEGS": LEG,
                             **provider_env(probe.sandbox), **extra})
    metrics = ProbeMetrics(CollectorRegistry())
    metrics.prime()
    sink = MemorySink()
    report = LegRunner(config, SignalsPlugin([sink, MetricsSink(metrics)]), ["-k", LEG], quiet=True).run("r1")
    (outcome,) = report.outcomes
    return outcome, metrics


def test_a_healthy_endpoint_passes_and_records_what_the_provider_says(provider_probe: Probe) -> None:
    outcome, metrics = _leg(provider_probe)
    assert (outcome.result, outcome.reason) == ("pass", "ok"), outcome.detail
    assert outcome.metadata["endpoint_status"] in ("enabled", "active")
    assert outcome.metadata["subscribed_types"] == 3
    assert outcome.latency_seconds is not None and outcome.latency_seconds > 0
    if provider_probe.sandbox.settings.provider == "stripe":
        # The live-mode endpoint at the same URL (disabled) is not the test key's; the other endpoint's
        # undelivered charge.refunded is not this endpoint's: neither fails the leg.
        assert outcome.metadata["endpoint_id"] == "we_1SandboxMain0001"
        assert outcome.metadata["api_version"] == "2025-03-31.basil"
        assert outcome.metadata["undelivered_events"] == 0
        assert metrics.registry.get_sample_value("instant_payment_probe_provider_undelivered_events") == 0
        # Three endpoints at two a page: the endpoints' list took two pages, the events' one.
        lists = [r["path"] for r in provider_probe.sandbox.requests if r["path"].startswith("/v1/")]
        assert sum(p.startswith("/v1/webhook_endpoints") for p in lists) == 2
        assert any("starting_after=we_1SandboxLive0003" in p for p in lists)
    else:
        assert outcome.metadata["endpoint_id"] == "HKsandbox0000001"


@pytest.mark.parametrize(("fault", "reason", "severity", "detail"), [
    ("provider_endpoint_disabled", "endpoint_disabled", "critical", "no payment event reaches the billing API"),
    ("provider_wrong_url", "endpoint_missing", "error", "2 registered" ),
    ("provider_events_unsubscribed", "events_unsubscribed", "error", None),
])
def test_the_provider_side_outages(provider_probe: Probe, fault: str, reason: str, severity: str,
                                   detail: str | None) -> None:
    outcome, _ = _leg(provider_probe, fault)
    assert (outcome.result, outcome.reason, outcome.severity) == ("fail", reason, severity), outcome.detail
    cancel = "customer.subscription.deleted" if provider_probe.sandbox.settings.provider == "stripe" \
        else "subscription.cancelled"
    expected = detail or f"not subscribed to {cancel}"
    if provider_probe.sandbox.settings.provider == "stripe" and fault == "provider_wrong_url":
        expected = "3 registered"  # the other endpoint and the live one
    assert expected in outcome.detail


def test_undelivered_events_past_the_lag_fail_and_younger_ones_are_in_flight(database_url: str,
                                                                            tmp_path: Path) -> None:
    server = start(SandboxSettings(database_url=database_url, webhook_secret=WEBHOOK_SECRET, plan_id_pro=PLAN_ID,
                                   provider="stripe"))
    try:
        probe = Probe(server, database_url, tmp_path)
        outcome, metrics = _leg(probe, "provider_deliveries_failing")
        assert (outcome.result, outcome.reason, outcome.severity) == ("fail", "deliveries_failing", "error")
        assert re.fullmatch(r"1 event\(s\) undelivered for more than 900 s, the oldest a invoice\.paid 360[01] s old "
                            r"\(Stripe reports delivery for the whole account: 0 other enabled endpoint\(s\) share "
                            r"those event types\)", outcome.detail), outcome.detail  # the other takes charge.refunded
        assert outcome.metadata["undelivered_events"] == 2  # the one in flight counted too
        assert metrics.registry.get_sample_value("instant_payment_probe_provider_undelivered_events") == 2
        oldest = metrics.registry.get_sample_value("instant_payment_probe_provider_oldest_undelivered_seconds")
        assert oldest is not None and 3599 <= oldest <= 3700
        # A lag longer than the oldest: both in flight, a pass.
        outcome, _ = _leg(probe, "provider_deliveries_failing", PAYMENT_PROBE_DELIVERY_LAG_SECONDS="7200")
        assert (outcome.result, outcome.metadata["undelivered_events"]) == ("pass", 2)
    finally:
        server.stop()


@pytest.mark.parametrize(("fault", "reason"), [
    ("provider_status_401", "provider_auth:401"), ("provider_status_403", "provider_auth:403"),
    ("provider_status_429", "provider_rate_limited"), ("provider_status_503", "provider_unavailable:http_status_503"),
])
def test_the_providers_own_trouble_is_degraded_never_a_fail(provider_probe: Probe, fault: str, reason: str) -> None:
    outcome, _ = _leg(provider_probe, fault)
    assert (outcome.result, outcome.reason) == ("degraded", reason), outcome.detail


def test_a_provider_that_hangs_is_degraded_at_the_http_timeout(provider_probe: Probe) -> None:
    outcome, _ = _leg(provider_probe, "provider_delay_5000", PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS="1")
    assert (outcome.result, outcome.reason) == ("degraded", "provider_unavailable:timeout"), outcome.detail


def test_a_wrong_key_is_provider_auth(provider_probe: Probe) -> None:
    wrong = "rk_test_wrong" if provider_probe.sandbox.settings.provider == "stripe" else "rzp_test_x:wrong"
    outcome, _ = _leg(provider_probe, PAYMENT_PROBE_PROVIDER_API_KEY=wrong)
    assert (outcome.result, outcome.reason) == ("degraded", "provider_auth:401")
    assert "wrong" not in outcome.detail


def test_without_a_key_it_is_degraded_config_missing(provider_probe: Probe) -> None:
    outcome, _ = _leg(provider_probe, PAYMENT_PROBE_PROVIDER_API_KEY="")
    assert (outcome.result, outcome.reason) == ("degraded", "config_missing:PAYMENT_PROBE_PROVIDER_API_KEY")
    if provider_probe.sandbox.settings.provider == "razorpay":
        outcome, _ = _leg(provider_probe, PAYMENT_PROBE_RAZORPAY_ACCOUNT_ID="")
        assert (outcome.result, outcome.reason) == ("degraded", "config_missing:PAYMENT_PROBE_RAZORPAY_ACCOUNT_ID")


def test_the_public_webhook_url_is_what_the_provider_must_have_registered(provider_probe: Probe) -> None:
    outcome, _ = _leg(provider_probe, PAYMENT_PROBE_PUBLIC_WEBHOOK_URL="https://billing.example.com/hooks")
    assert (outcome.result, outcome.reason) == ("fail", "endpoint_missing")
    # ignoring one trailing slash
    url = provider_probe.sandbox.url + provider_probe.sandbox.settings.webhook_path + "/"
    outcome, _ = _leg(provider_probe, PAYMENT_PROBE_PUBLIC_WEBHOOK_URL=url)
    assert outcome.result == "pass", outcome.detail


def test_not_collected_for_standard_and_a_key_that_moves_live_money_is_exit_2() -> None:
    assert LEG in LEGS
    assert LEG not in load_config({"PAYMENT_PROBE_PROVIDER": "standard"}).legs
    assert LEG in load_config({"PAYMENT_PROBE_PROVIDER": "stripe"}).legs
    for env, variable in (
        ({"PAYMENT_PROBE_PROVIDER": "stripe", "PAYMENT_PROBE_PROVIDER_API_KEY": "sk_live_51Abc"},
         "PAYMENT_PROBE_PROVIDER_API_KEY"),
        ({"PAYMENT_PROBE_PROVIDER": "stripe", "PAYMENT_PROBE_PROVIDER_API_KEY": "pk_test_51Abc"},
         "PAYMENT_PROBE_PROVIDER_API_KEY"),
        ({"PAYMENT_PROBE_PROVIDER_TEST_KEY": "sk_live_51Abc"}, "PAYMENT_PROBE_PROVIDER_TEST_KEY"),
        ({"PAYMENT_PROBE_PROVIDER_TEST_KEY": "rk_live_51Abc"}, "PAYMENT_PROBE_PROVIDER_TEST_KEY"),
        ({"PAYMENT_PROBE_PROVIDER_API_KEY": "no-colon"}, "PAYMENT_PROBE_PROVIDER_API_KEY"),
    ):
        with pytest.raises(ConfigError) as info:
            load_config(env)
        assert info.value.variable == variable
        assert "51Abc" not in str(info.value)  # a key is never echoed


def test_the_provider_key_never_leaves_the_process(provider_probe: Probe) -> None:
    key = provider_probe.sandbox.settings.provider_api_key or ""
    config = load_config({"PAYMENT_PROBE_PROVIDER": provider_probe.sandbox.settings.provider,
                          "PAYMENT_PROBE_PROVIDER_API_KEY": key})
    assert key in config.secrets()
    if ":" in key:
        assert key.split(":")[1] in config.secrets()
    outcome, _ = _leg(provider_probe, "provider_status_401")
    assert key not in repr(outcome) and key.split(":")[-1] not in repr(outcome)
