"""The webhook-security leg and the upgrade leg against the real sandbox and real Postgres."""

from __future__ import annotations

import uuid

import pytest

from conftest import Probe, query

WEBHOOK_FAULTS = [
    ("webhook_accept_unsigned", "fail", "critical", "unsigned_accepted"),
    ("webhook_accept_forged", "fail", "critical", "forged_accepted"),
    ("webhook_wrong_rejection", "fail", "error", "wrong_rejection"),
    ("webhook_500", "fail", "error", "http_status:500"),
    ("webhook_status_401", "fail", "error", "http_status:401"),
    ("webhook_status_404", "fail", "error", "http_status:404"),
]


@pytest.mark.parametrize(("fault", "result", "severity", "reason"), WEBHOOK_FAULTS)
def test_webhook_security_faults(probe: Probe, fault: str, result: str, severity: str, reason: str) -> None:
    outcome = probe.run(fault, legs="test_webhook_security")["webhook_security"]
    assert (outcome.result, outcome.severity, outcome.reason) == (result, severity, reason)


def test_both_accepted_reports_the_unsigned_one_first(probe: Probe) -> None:
    outcome = probe.run("webhook_accept_unsigned", "webhook_accept_forged",
                        legs="test_webhook_security")["webhook_security"]
    assert (outcome.severity, outcome.reason) == ("critical", "unsigned_accepted")


def test_accepted_forgery_outranks_a_wrong_rejection(probe: Probe) -> None:
    outcome = probe.run("webhook_wrong_rejection", "webhook_accept_forged",
                        legs="test_webhook_security")["webhook_security"]
    assert (outcome.severity, outcome.reason) == ("critical", "forged_accepted")


def test_security_leg_sends_both_payloads_to_the_configured_path(probe: Probe) -> None:
    probe.sandbox.settings.webhook_path = "/hooks/rzp"
    outcome = probe.run(legs="test_webhook_security", PAYMENT_PROBE_WEBHOOK_PATH="/hooks/rzp")
    assert outcome["webhook_security"].result == "pass"
    posts = [r for r in probe.sandbox.requests if r["path"] == "/hooks/rzp"]
    assert len(posts) == 2
    assert "X-Razorpay-Signature" not in posts[0]["headers"]
    assert len(posts[1]["headers"]["X-Razorpay-Signature"]) == 64
    assert posts[0]["headers"]["X-Razorpay-Event-Id"] != posts[1]["headers"]["X-Razorpay-Event-Id"]


def _cohort_rows(url: str) -> list[tuple[object, ...]]:
    return query(url, "SELECT id, plan_tier FROM teams WHERE is_test_cohort")


@pytest.fixture
def real_team(database_url: str) -> str:
    team = str(uuid.uuid4())
    query(database_url, "INSERT INTO teams (id, name, plan_tier) VALUES (%s, 'acme-real', 'hobby')", (team,))
    return team


def _real_team_intact(url: str, team: str) -> bool:
    return query(url, "SELECT name, plan_tier, is_test_cohort FROM teams WHERE id = %s", (team,)) == [
        ("acme-real", "hobby", False)
    ]


UPGRADE_CASES = [
    ((), "pass", "ok"),
    (("upgrade_no_flip",), "fail", "tier_not_flipped"),
    (("upgrade_flip_then_500",), "fail", "webhook_status:500"),
    (("upgrade_slow_flip",), "pass", "ok"),
    (("webhook_status_500",), "fail", "webhook_status:500"),
    (("webhook_500",), "pass", "ok"),  # the gate crashing on bad signatures is the security leg's
]


@pytest.mark.parametrize(("faults", "result", "reason"), UPGRADE_CASES)
def test_upgrade_leg_paths_always_reap(
    probe: Probe, database_url: str, real_team: str, faults: tuple[str, ...], result: str, reason: str
) -> None:
    outcome = probe.run(*faults, legs="test_upgrade_webhook_e2e")["upgrade_webhook_e2e"]
    assert (outcome.result, outcome.reason) == (result, reason)
    assert _cohort_rows(database_url) == []
    assert _real_team_intact(database_url, real_team)


def test_flip_then_500_really_flipped_but_still_fails(probe: Probe, database_url: str) -> None:
    query(database_url, """CREATE TABLE seen (id uuid, tier text);
        CREATE FUNCTION keep() RETURNS trigger AS $$ BEGIN
          INSERT INTO seen VALUES (NEW.id, NEW.plan_tier); RETURN NEW; END $$ LANGUAGE plpgsql;
        CREATE TRIGGER keep AFTER UPDATE ON teams FOR EACH ROW EXECUTE FUNCTION keep();""")
    outcome = probe.run("upgrade_flip_then_500", legs="test_upgrade_webhook_e2e")["upgrade_webhook_e2e"]
    assert outcome.reason == "webhook_status:500"
    assert [r[0] for r in query(database_url, "SELECT tier FROM seen")] == ["pro"]


def test_slow_flip_past_the_budget_is_degraded(probe: Probe) -> None:
    outcome = probe.run("upgrade_slow_flip", legs="test_upgrade_webhook_e2e",
                        PAYMENT_PROBE_UPGRADE_SLOW_SECONDS="0.5")["upgrade_webhook_e2e"]
    assert (outcome.result, outcome.reason) == ("degraded", "slow")
    assert outcome.latency_seconds is not None and outcome.latency_seconds >= 1.0


def test_slow_flip_past_the_wait_is_not_flipped(probe: Probe, database_url: str) -> None:
    outcome = probe.run("upgrade_slow_flip", legs="test_upgrade_webhook_e2e",
                        PAYMENT_PROBE_UPGRADE_WAIT_SECONDS="0.3")["upgrade_webhook_e2e"]
    assert (outcome.result, outcome.reason) == ("fail", "tier_not_flipped")


def test_expected_tier_is_configurable(probe: Probe) -> None:
    outcome = probe.run(legs="test_upgrade_webhook_e2e", PAYMENT_PROBE_EXPECTED_TIER="enterprise",
                        PAYMENT_PROBE_UPGRADE_WAIT_SECONDS="0.3")["upgrade_webhook_e2e"]
    assert (outcome.result, outcome.reason) == ("fail", "tier_not_flipped")


def test_leg_timeout_still_reaps(probe: Probe, database_url: str, real_team: str) -> None:
    outcome = probe.run("upgrade_no_flip", legs="test_upgrade_webhook_e2e",
                        PAYMENT_PROBE_UPGRADE_WAIT_SECONDS="30",
                        PAYMENT_PROBE_LEG_TIMEOUT_SECONDS="1.5")["upgrade_webhook_e2e"]
    assert (outcome.result, outcome.reason) == ("fail", "timeout")
    assert _cohort_rows(database_url) == []
    assert _real_team_intact(database_url, real_team)


def test_wrong_secret_is_a_webhook_rejection_and_reaped(probe: Probe, database_url: str) -> None:
    outcome = probe.run(legs="test_upgrade_webhook_e2e",
                        RAZORPAY_TEST_WEBHOOK_SECRET="whsec_rotated_elsewhere")["upgrade_webhook_e2e"]
    assert (outcome.result, outcome.reason) == ("fail", "webhook_status:400")
    assert _cohort_rows(database_url) == []


@pytest.mark.parametrize(("unset", "reason"), [
    ("PAYMENT_PROBE_DATABASE_URL", "config_missing:PAYMENT_PROBE_DATABASE_URL"),
    ("RAZORPAY_TEST_WEBHOOK_SECRET", "config_missing:RAZORPAY_TEST_WEBHOOK_SECRET"),
    ("PAYMENT_PROBE_TEST_PLAN_ID_PRO", "config_missing:PAYMENT_PROBE_TEST_PLAN_ID_PRO"),
])
def test_missing_upgrade_config_degrades_naming_it(probe: Probe, unset: str, reason: str) -> None:
    outcome = probe.run(legs="test_upgrade_webhook_e2e", **{unset: ""})["upgrade_webhook_e2e"]
    assert (outcome.result, outcome.severity, outcome.reason) == ("degraded", "warning", reason)
    assert outcome.latency_seconds is None


def test_first_missing_variable_is_named(probe: Probe) -> None:
    outcome = probe.run(legs="test_upgrade_webhook_e2e", RAZORPAY_TEST_WEBHOOK_SECRET="",
                        PAYMENT_PROBE_TEST_PLAN_ID_PRO="")["upgrade_webhook_e2e"]
    assert outcome.reason == "config_missing:RAZORPAY_TEST_WEBHOOK_SECRET"


def test_unreachable_database_is_mint_failed(probe: Probe) -> None:
    outcome = probe.run(legs="test_upgrade_webhook_e2e",
                        PAYMENT_PROBE_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere")
    assert (outcome["upgrade_webhook_e2e"].result, outcome["upgrade_webhook_e2e"].reason) == (
        "degraded", "mint_failed")


def test_schema_drift_is_mint_failed(probe: Probe, database_url: str) -> None:
    query(database_url, "ALTER TABLE teams RENAME COLUMN is_test_cohort TO cohort")
    outcome = probe.run(legs="test_upgrade_webhook_e2e")["upgrade_webhook_e2e"]
    assert (outcome.result, outcome.reason) == ("degraded", "mint_failed")


def test_reap_that_fails_fails_the_leg(probe: Probe, database_url: str) -> None:
    query(database_url, """CREATE FUNCTION no_delete() RETURNS trigger AS $$ BEGIN
        RAISE EXCEPTION 'deletes are frozen'; END $$ LANGUAGE plpgsql;
        CREATE TRIGGER no_delete BEFORE DELETE ON teams FOR EACH ROW EXECUTE FUNCTION no_delete();""")
    outcome = probe.run(legs="test_upgrade_webhook_e2e")["upgrade_webhook_e2e"]
    assert (outcome.result, outcome.severity, outcome.reason) == ("fail", "error", "reap_failed")
    assert outcome.metadata["phase"] == "teardown"


def test_a_reap_that_deletes_no_row_while_the_team_exists_fails_the_leg(probe: Probe, database_url: str) -> None:
    # The team stops being a cohort row mid-leg (a migration, a human): the pinned DELETE finds
    # nothing, the team is still there, and the leg says so instead of passing silently.
    query(database_url, """CREATE FUNCTION uncohort() RETURNS trigger AS $$ BEGIN
        UPDATE teams SET is_test_cohort = false WHERE id = NEW.id; RETURN NULL; END $$ LANGUAGE plpgsql;
        CREATE TRIGGER uncohort AFTER UPDATE OF plan_tier ON teams FOR EACH ROW
          WHEN (NEW.is_test_cohort) EXECUTE FUNCTION uncohort();""")
    outcome = probe.run(legs="test_upgrade_webhook_e2e")["upgrade_webhook_e2e"]
    assert (outcome.result, outcome.reason) == ("fail", "reap_failed")
    assert outcome.detail.endswith("still exists: the reap deleted no row")
    assert query(database_url, "SELECT count(*) FROM teams WHERE NOT is_test_cohort") == [(1,)]


def test_cohort_team_shape(probe: Probe, database_url: str) -> None:
    query(database_url, """CREATE TABLE minted AS SELECT * FROM teams WITH NO DATA;
        CREATE FUNCTION keep_mint() RETURNS trigger AS $$ BEGIN
          INSERT INTO minted SELECT NEW.*; RETURN NEW; END $$ LANGUAGE plpgsql;
        CREATE TRIGGER keep_mint AFTER INSERT ON teams FOR EACH ROW EXECUTE FUNCTION keep_mint();""")
    probe.run(legs="test_upgrade_webhook_e2e")
    rows = query(database_url, "SELECT name, plan_tier, is_test_cohort FROM minted")
    assert len(rows) == 1
    name, tier, cohort = rows[0]
    assert tier == "hobby" and cohort is True
    assert name.startswith("payment-probe-cohort-")
    suffix = name.removeprefix("payment-probe-cohort-").rsplit("-", 1)
    assert len(suffix[1]) == 8 and all(c in "0123456789abcdef" for c in suffix[1])
