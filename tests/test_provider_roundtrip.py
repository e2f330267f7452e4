"""provider_roundtrip (SPEC 17) against the sandbox as Stripe in TEST mode: its delivery engine posts the
invoice.paid and customer.subscription.deleted it creates to the registered endpoint, signed with that
endpoint's secret; each failure mode the spec names is made real by a sandbox fault."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.legrun import LegRunner
from runner.signals.controller import SignalsPlugin
from runner.signals.outcome import Outcome
from runner.signals.sink import MemorySink
from sandbox.server import SandboxSettings, start
from synthetics.config import load_config

from conftest import PLAN_ID, WEBHOOK_SECRET, Probe, probe_env, provider_env, query
from support.processes import cli, wait_for

LEG = "provider_roundtrip"


@pytest.fixture
def stripe_probe(database_url: str, tmp_path: Path) -> Iterator[Probe]:
    server = start(SandboxSettings(database_url=database_url, webhook_secret="whsec_" + WEBHOOK_SECRET,
                                   plan_id_pro=PLAN_ID, provider="stripe"))
    try:
        yield Probe(server, database_url, tmp_path)
    finally:
        server.stop()


def _leg(probe: Probe, *faults: str, **extra: str) -> Outcome:
    probe.sandbox.faults.replace(faults)
    config = probe.config(**{"PAYMENT_PROBE_PROVIDER": "stripe", "PAYMENT_PROBE_LEGS": LEG,
                             "PAYMENT_PROBE_WEBHOOK_SECRET": probe.sandbox.settings.webhook_secret,
                             "PAYMENT_PROBE_ROUNDTRIP_WAIT_SECONDS": "4", **provider_env(probe.sandbox), **extra})
    sink = MemorySink()
    report = LegRunner(config, SignalsPlugin([sink]), ["-k", LEG], quiet=True).run("r1")
    (outcome,) = report.outcomes
    return outcome


def _left_behind(probe: Probe) -> tuple[int, int]:
    """Customers still at the provider, cohort teams still in the database."""
    engine = probe.sandbox.provider_engine
    teams = query(probe.database_url, "SELECT count(*) FROM teams WHERE is_test_cohort")[0][0]
    return len(engine.customers), int(teams)


def test_the_provider_starts_the_money_path_and_the_tier_flips_and_flips_back(stripe_probe: Probe) -> None:
    outcome = _leg(stripe_probe)
    assert (outcome.result, outcome.reason) == ("pass", "ok"), outcome.detail
    engine = stripe_probe.sandbox.provider_engine
    delivered = [(d["type"], d["status"]) for d in engine.deliveries]
    assert delivered == [("invoice.paid", 200), ("customer.subscription.deleted", 200)]
    assert all(e["pending_webhooks"] == 0 for e in engine.events)
    # Every object it created is tagged synthetic; the customer is gone at the provider, the team in the DB.
    assert {s["metadata"]["payment_probe"] for s in engine.subscriptions.values()} == {"synthetic"}
    assert _left_behind(stripe_probe) == (0, 0)
    assert outcome.metadata["customer_id"].startswith("cus_") and outcome.metadata["subscription_id"].startswith("sub_")
    # Each create carried an idempotency key made of the run id and the step.
    keys = [r["headers"].get("Idempotency-Key", "") for r in stripe_probe.sandbox.requests
            if r["method"] == "POST" and r["path"].startswith("/v1/")]
    assert len(keys) == 2 and keys[0].startswith("payment-probe-r1-") and keys[0].endswith("-customer")
    assert keys[1].endswith("-subscription")


@pytest.mark.parametrize(("faults", "reason", "severity"), [
    (("provider_secret_mismatch",), "delivery_rejected", "critical"),  # the secret rotated on one side
    (("provider_wrong_url",), "delivery_rejected", "critical"),  # the endpoint registered at an old URL
    (("provider_deliveries_failing",), "delivery_rejected", "critical"),  # the handler answers the provider 500
    (("upgrade_no_flip",), "tier_not_flipped", "error"),  # acknowledged, not applied
    (("cancel_ignored",), "cancel_not_applied", "error"),
    (("provider_card_declined",), "provider_rejected:card_declined", "error"),
])
def test_each_way_the_pipe_breaks(stripe_probe: Probe, faults: tuple[str, ...], reason: str, severity: str) -> None:
    outcome = _leg(stripe_probe, *faults)
    assert (outcome.result, outcome.reason, outcome.severity) == ("fail", reason, severity), outcome.detail
    assert _left_behind(stripe_probe) == (0, 0)  # always reaped, at the provider and in the database


def test_a_missing_setting_is_degraded_and_other_providers_do_not_collect_it(stripe_probe: Probe) -> None:
    outcome = _leg(stripe_probe, PAYMENT_PROBE_PROVIDER_TEST_KEY="")
    assert (outcome.result, outcome.reason) == ("degraded", "config_missing:PAYMENT_PROBE_PROVIDER_TEST_KEY")
    outcome = _leg(stripe_probe, PAYMENT_PROBE_DATABASE_URL="")
    assert (outcome.result, outcome.reason) == ("degraded", "config_missing:PAYMENT_PROBE_DATABASE_URL")
    assert LEG not in load_config({"PAYMENT_PROBE_PROVIDER": "razorpay"}).legs
    assert LEG not in load_config({"PAYMENT_PROBE_PROVIDER": "standard"}).legs
    assert LEG in load_config({"PAYMENT_PROBE_PROVIDER": "stripe"}).legs


def test_a_live_key_is_exit_2_always(stripe_probe: Probe, tmp_path: Path) -> None:
    env = {**probe_env(stripe_probe.sandbox, stripe_probe.database_url, tmp_path), "PAYMENT_PROBE_PROVIDER": "stripe",
           **provider_env(stripe_probe.sandbox), "PAYMENT_PROBE_PROVIDER_TEST_KEY": "sk_live_51LiveMoneyKey"}
    proc = cli("run", "--once", env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("payment-probe: PAYMENT_PROBE_PROVIDER_TEST_KEY: expected a Stripe TEST key "
                                   "(sk_test_... or rk_test_...), never a live one")


def test_sweep_deletes_leftover_synthetic_customers_only(stripe_probe: Probe, tmp_path: Path) -> None:
    engine = stripe_probe.sandbox.provider_engine
    engine.create_customer({"name": "left by a killed run", "metadata[payment_probe]": "synthetic",
                            "payment_method": "pm_card_visa"})
    engine.create_customer({"name": "a real customer", "metadata[plan]": "pro"})
    env = {**probe_env(stripe_probe.sandbox, stripe_probe.database_url, tmp_path), "PAYMENT_PROBE_PROVIDER": "stripe",
           **provider_env(stripe_probe.sandbox), "PAYMENT_PROBE_WEBHOOK_SECRET": stripe_probe.sandbox.settings.webhook_secret,
           "PAYMENT_PROBE_ROUNDTRIP_WAIT_SECONDS": "1"}
    created = max(int(c["created"]) for c in engine.customers.values())
    wait_for(lambda: time.time() > created + 1.5, 10, "the leftover to be older than the wait")
    proc = cli("sweep", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"  # no cohort team left
    assert "deleted 1 leftover synthetic test customer(s) at the provider" in proc.stderr
    assert [c["name"] for c in engine.customers.values()] == ["a real customer"]


def test_the_sandbox_prints_its_provider_keys(tmp_path: Path, database_url: str) -> None:
    proc = subprocess.Popen([*cli_args(), "sandbox", "--provider", "stripe", "--port", "0",
                             "--database-url", database_url], stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 60
        while "read-only key" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline() if proc.stderr else ""
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert "read-only key: rk_test_" in line and "TEST key: sk_test_" in line


def cli_args() -> list[str]:
    import sys

    return [sys.executable, "-m", "runner.cli"]



def test_the_official_stripe_sdk_reads_and_writes_the_sandbox_as_stripe(stripe_probe: Probe) -> None:
    """SPEC 17: the sandbox's Stripe API has Stripe's shapes, parseable by the official `stripe` SDK (its list
    envelopes auto-paginate, its objects and deletions parse)."""
    import stripe

    settings, url = stripe_probe.sandbox.settings, stripe_probe.sandbox.url
    reader = stripe.StripeClient(settings.provider_api_key or "", base_addresses={"api": url})
    endpoints = [e.id for e in reader.v1.webhook_endpoints.list(params={"limit": 100}).auto_paging_iter()]
    assert endpoints == ["we_1SandboxOther002", "we_1SandboxLive0003", "we_1SandboxMain0001"]  # two pages of at most 2
    undelivered = [(e.type, e.pending_webhooks) for e in reader.v1.events.list(
        params={"delivery_success": False, "limit": 100}).auto_paging_iter()]
    assert undelivered == [("charge.refunded", 1)]
    writer = stripe.StripeClient(settings.provider_test_key or "", base_addresses={"api": url})
    customer = writer.v1.customers.create(params={
        "name": "sdk", "metadata": {"payment_probe": "synthetic"}, "payment_method": "pm_card_visa",
        "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    assert customer.id.startswith("cus_") and customer.metadata["payment_probe"] == "synthetic"
    assert writer.v1.customers.delete(customer.id).deleted is True
    with pytest.raises(stripe.PermissionError):  # the read-only key cannot create
        reader.v1.customers.create(params={"name": "no"})
