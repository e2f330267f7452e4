"""Bad configuration: exit 2 and one exact line naming the variable, never a secret's value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from synthetics.config import ConfigError, load_config

BAD_VALUES = [
    ("PAYMENT_PROBE_ENABLED", "maybe", "PAYMENT_PROBE_ENABLED: expected one of 1/true/yes/on or 0/false/no/off, got 'maybe'"),
    ("PAYMENT_PROBE_BASE_URL", "billing.example.com", "PAYMENT_PROBE_BASE_URL: expected an absolute http:// or https:// URL, got 'billing.example.com'"),
    ("PAYMENT_PROBE_BASE_URL", "ftp://billing.example.com", "PAYMENT_PROBE_BASE_URL: expected an absolute http:// or https:// URL, got 'ftp://billing.example.com'"),
    ("PAYMENT_PROBE_INTERVAL_SECONDS", "0", "PAYMENT_PROBE_INTERVAL_SECONDS: expected a positive number of seconds, got '0'"),
    ("PAYMENT_PROBE_INTERVAL_SECONDS", "-5", "PAYMENT_PROBE_INTERVAL_SECONDS: expected a positive number of seconds, got '-5'"),
    ("PAYMENT_PROBE_INTERVAL_SECONDS", "five", "PAYMENT_PROBE_INTERVAL_SECONDS: expected a positive number of seconds, got 'five'"),
    ("PAYMENT_PROBE_INTERVAL_SECONDS", "nan", "PAYMENT_PROBE_INTERVAL_SECONDS: expected a positive number of seconds, got 'nan'"),
    ("PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS", "0", "PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS: expected a positive number of seconds, got '0'"),
    ("PAYMENT_PROBE_LEG_TIMEOUT_SECONDS", "1m", "PAYMENT_PROBE_LEG_TIMEOUT_SECONDS: expected a positive number of seconds, got '1m'"),
    ("PAYMENT_PROBE_SLOW_SECONDS", "-1", "PAYMENT_PROBE_SLOW_SECONDS: expected a positive number of seconds, got '-1'"),
    ("PAYMENT_PROBE_UPGRADE_SLOW_SECONDS", "x", "PAYMENT_PROBE_UPGRADE_SLOW_SECONDS: expected a positive number of seconds, got 'x'"),
    ("PAYMENT_PROBE_UPGRADE_WAIT_SECONDS", "0", "PAYMENT_PROBE_UPGRADE_WAIT_SECONDS: expected a positive number of seconds, got '0'"),
    ("PAYMENT_PROBE_METRICS_PORT", "70000", "PAYMENT_PROBE_METRICS_PORT: expected a TCP port number 0-65535, got '70000'"),
    ("PAYMENT_PROBE_METRICS_PORT", "http", "PAYMENT_PROBE_METRICS_PORT: expected a TCP port number 0-65535, got 'http'"),
    ("NEW_RELIC_REGION", "APAC", "NEW_RELIC_REGION: expected US or EU, got 'APAC'"),
    ("NEW_RELIC_ACCOUNT_ID", "acct-1", "NEW_RELIC_ACCOUNT_ID: expected a numeric New Relic account id, got 'acct-1'"),
    ("PAYMENT_PROBE_EVENTS_URL", "collector", "PAYMENT_PROBE_EVENTS_URL: expected an absolute http:// or https:// URL, got 'collector'"),
    ("PAYMENT_PROBE_WEBHOOK_PATH", "razorpay/webhook", "PAYMENT_PROBE_WEBHOOK_PATH: expected an absolute path starting with '/', got 'razorpay/webhook'"),
    ("PAYMENT_PROBE_AUDIT_TABLE", "audit log; drop", "PAYMENT_PROBE_AUDIT_TABLE: expected a table name like audit_log or schema.audit_log, got 'audit log; drop'"),
    # Secret-bearing variables are named, their values never echoed.
    ("PAYMENT_PROBE_DATABASE_URL", "mysql://u:hunter2@db/x", "PAYMENT_PROBE_DATABASE_URL: expected a postgresql:// URL"),
    ("PAYMENT_PROBE_BASE_URL", "htp://user:s3cret@host", "PAYMENT_PROBE_BASE_URL: expected an absolute http:// or https:// URL, got 'htp://host'"),
    ("PAYMENT_PROBE_BASE_URL", "https://probe:s3cret@host:44x3", "PAYMENT_PROBE_BASE_URL: expected an absolute http:// or https:// URL, got 'https://host:44x3'"),
    ("PAYMENT_PROBE_EVENTS_URL", "https://probe:s3cret@host:44x3/v1", "PAYMENT_PROBE_EVENTS_URL: expected an absolute http:// or https:// URL, got 'https://host:44x3/v1'"),
]


@pytest.mark.parametrize(("variable", "value", "message"), BAD_VALUES)
def test_bad_value_is_named_with_its_accepted_form(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({variable: value})
    assert str(info.value) == message
    assert info.value.variable == variable


def test_defaults_follow_the_spec() -> None:
    config = load_config({})
    assert (config.enabled, config.interval_seconds, config.http_timeout_seconds) == (False, 300.0, 15.0)
    assert (config.leg_timeout_seconds, config.upgrade_wait_seconds) == (60.0, 30.0)
    assert (config.expected_tier, config.checkout_plan_id, config.webhook_path) == ("pro", "pro", "/razorpay/webhook")
    assert config.audit_table == "audit_log"
    assert config.base_url is None and config.database_url is None


@pytest.mark.parametrize("word", ["1", "true", "YES", "On"])
def test_flag_words_turn_it_on(word: str) -> None:
    assert load_config({"PAYMENT_PROBE_ENABLED": word}).enabled is True


def test_pytest_options_override_the_environment() -> None:
    config = load_config(
        {"PAYMENT_PROBE_BASE_URL": "http://env.example"}, base_url="http://option.example/",
        api_token="tok", database_url="postgresql://h/db",
    )
    assert config.base_url == "http://option.example"
    assert config.api_token and config.api_token.reveal() == "tok"
    assert config.database_url and config.database_url.reveal() == "postgresql://h/db"


def test_secrets_are_not_in_the_repr() -> None:
    config = load_config({"PAYMENT_PROBE_API_TOKEN": "tok_abcdef", "RAZORPAY_TEST_WEBHOOK_SECRET": "whsec_zz"})
    assert "tok_abcdef" not in repr(config) and "whsec_zz" not in repr(config)


def _case(variable: str, value: str) -> tuple[str, str, str]:
    return next(c for c in BAD_VALUES if c[0] == variable and c[1] == value)


@pytest.mark.parametrize(("variable", "value", "message"), [
    _case("PAYMENT_PROBE_INTERVAL_SECONDS", "0"), _case("PAYMENT_PROBE_ENABLED", "maybe"),
    _case("PAYMENT_PROBE_DATABASE_URL", "mysql://u:hunter2@db/x"),
], ids=["interval", "flag", "database-url"])
def test_runner_exits_2_with_one_line(variable: str, value: str, message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENT_PROBE_")}
    env.update({"PAYMENT_PROBE_ENABLED": "1", variable: value})
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "run", "--once"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"payment-probe: {message}"]
    assert proc.stdout == ""
    assert "hunter2" not in proc.stderr


SECRET_CASES = [  # every secret-bearing variable, with a bad value around a canary: named, never echoed
    ("PAYMENT_PROBE_DATABASE_URL", "mysql://u:CANARYpw1@db/x"),
    ("PAYMENT_PROBE_BASE_URL", "htp://user:CANARYpw2@host"),
    ("PAYMENT_PROBE_BASE_URL", "https://user:CANARYpw3@host:44x3"),
    ("PAYMENT_PROBE_EVENTS_URL", "https://user:CANARYpw4@host:44x3"),
    ("PAYMENT_PROBE_EVENTS_URL", "collector://user:CANARYpw5@host"),
]


@pytest.mark.parametrize(("variable", "value"), SECRET_CASES, ids=lambda v: v.split(":")[0])
def test_a_secret_in_a_bad_value_is_never_echoed(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({variable: value})
    assert info.value.variable == variable and str(info.value).startswith(f"{variable}: expected")
    assert "CANARY" not in str(info.value) and "user:" not in str(info.value)


@pytest.mark.parametrize("variable", ["PAYMENT_PROBE_API_TOKEN", "RAZORPAY_TEST_WEBHOOK_SECRET", "NEW_RELIC_INSERT_KEY",
                                      "PAYMENT_PROBE_DATABASE_URL"])
def test_secret_settings_print_as_a_mask(variable: str) -> None:
    value = "postgresql://u:CANARYsecret@db/x" if variable == "PAYMENT_PROBE_DATABASE_URL" else "CANARYsecret"
    config = load_config({variable: value})
    assert "CANARY" not in repr(config) and "CANARY" not in str(config)
