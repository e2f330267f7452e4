"""Bad configuration: exit 2 and one exact line naming the variable, never a secret's value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from synthetics.config import ConfigError, load_config
from synthetics.registry import LEGS

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
    assert (config.enabled, config.interval_seconds, config.http_timeout_seconds) == (False, None, 15.0)
    # SPEC 18's per-leg defaults; the loop ticks at the shortest
    assert {leg: config.interval_of(leg) for leg in config.legs} == {
        "checkout_reachable": 60.0, "billing_state": 60.0, "invoices_reachable": 60.0, "webhook_security": 60.0,
        "upgrade_webhook_e2e": 300.0, "tls_certificate": 900.0, "webhook_replay": 300.0,
        "provider_webhook_health": 120.0}
    # razorpay: every leg but Stripe's own round trip
    assert config.tick_seconds == 60.0 and config.legs == tuple(leg for leg in LEGS if leg != "provider_roundtrip")
    assert load_config({"PAYMENT_PROBE_PROVIDER": "stripe"}).interval_of("provider_roundtrip") == 900.0
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


# ---- hostile values at start (SPEC section 3): exit 2, the variable named, the value never shown ----

CONTROL = "a value without control characters (CR, LF, NUL, tab, ...)"
HEADER = "printable ASCII (the value is sent in an HTTP header)"
URL = "an absolute http:// or https:// URL"
CONTROL_CHARACTERS = {"cr": "\r", "lf": "\n", "crlf": "\r\n", "nul": "\x00", "tab": "\t", "esc": "\x1b",
                      "del": "\x7f", "bell": "\x07"}
EVERY_TEXT_VARIABLE = ["PAYMENT_PROBE_API_TOKEN", "NEW_RELIC_INSERT_KEY", "RAZORPAY_TEST_WEBHOOK_SECRET",
                       "PAYMENT_PROBE_DATABASE_URL", "PAYMENT_PROBE_BASE_URL", "PAYMENT_PROBE_EVENTS_URL",
                       "PAYMENT_PROBE_ENVIRONMENT", "PAYMENT_PROBE_TEST_PLAN_ID_PRO", "PAYMENT_PROBE_EXPECTED_TIER",
                       "PAYMENT_PROBE_CHECKOUT_PLAN_ID", "PAYMENT_PROBE_WEBHOOK_PATH", "NEW_RELIC_ACCOUNT_ID"]
BASES = {"PAYMENT_PROBE_DATABASE_URL": "postgresql://u:p@db/x", "PAYMENT_PROBE_BASE_URL": "https://billing.example.com",
         "PAYMENT_PROBE_EVENTS_URL": "https://collector.example.com/v1", "PAYMENT_PROBE_WEBHOOK_PATH": "/hook",
         "NEW_RELIC_ACCOUNT_ID": "12345"}


@pytest.mark.parametrize("variable", EVERY_TEXT_VARIABLE)
@pytest.mark.parametrize("character", CONTROL_CHARACTERS.values(), ids=CONTROL_CHARACTERS.keys())
def test_a_control_character_in_any_value_is_refused_at_start(variable: str, character: str) -> None:
    base = BASES.get(variable, "CANARYvalue")
    value = base[:5] + character + "X-Injected: yes" + base[5:]
    with pytest.raises(ConfigError) as info:
        load_config({variable: value})
    assert str(info.value) == f"{variable}: expected {CONTROL}"
    assert "Injected" not in str(info.value) and base[:5] not in str(info.value).split(":", 1)[1]


@pytest.mark.parametrize("variable", ["PAYMENT_PROBE_API_TOKEN", "NEW_RELIC_INSERT_KEY"])
@pytest.mark.parametrize("value", ["tök", "tok€n", "tok\u00a0en", "tok\u2028en", "\U0001f511key"],
                         ids=["latin-1", "euro", "nbsp", "line-separator", "emoji"])
def test_non_ascii_in_a_header_bound_value_is_refused(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({variable: value})
    assert str(info.value) in (f"{variable}: expected {HEADER}", f"{variable}: expected {CONTROL}")
    assert value not in str(info.value)


PATH_RULE = "whose path has only characters RFC 3986 allows (percent-encode the rest)"
URL_SHAPES = [
    ("https://billing.example.com/?", f"{URL} without a query or fragment ('?', '#')"),
    ("https://billing.example.com/?x=1", f"{URL} without a query or fragment ('?', '#')"),
    ("https://billing.example.com/#", f"{URL} without a query or fragment ('?', '#')"),
    ("https://billing.example.com/api#frag", f"{URL} without a query or fragment ('?', '#')"),
    ("https://probe:CANARYpw@billing.example.com", f"{URL} without user info (user:password@)"),
    ("https://probe@billing.example.com", f"{URL} without user info (user:password@)"),
    ("https://billing..example.com", f"{URL} whose host is a DNS name or an IP literal, got 'https://billing..example.com'"),
    ("https://" + "a" * 64 + ".example.com", f"{URL} whose host is a DNS name or an IP literal, got 'https://{'a' * 64}.example.com'"),
    ("https://-billing.example.com", f"{URL} whose host is a DNS name or an IP literal, got 'https://-billing.example.com'"),
    ("https://bill ing.example.com", f"{URL} whose host is a DNS name or an IP literal, got 'https://bill ing.example.com'"),
    ("https://billing.exämple.com", f"{URL} whose host is a DNS name or an IP literal, got 'https://billing.exämple.com'"),
    ("https://billing.example.com/€uro", f"{URL} {PATH_RULE}"),
    # Issue 26 #15: each of these was let through, and the first paged every run instead of exit 2.
    ("http://billing.example.com/pa th", f"{URL} {PATH_RULE}"),
    ("http://billing.example.com/a<b>", f"{URL} {PATH_RULE}"),
    ("http://billing.example.com/%zz", f"{URL} {PATH_RULE}"),
    ("http://billing.example.com:0", f"{URL} with a port from 1 to 65535, got 'http://billing.example.com:0'"),
    ("http://127.1", f"{URL} whose host is a DNS name or an IP literal, got 'http://127.1'"),
    ("http://0x7f.1:8080", f"{URL} whose host is a DNS name or an IP literal, got 'http://0x7f.1:8080'"),
    ("http://1.2.3", f"{URL} whose host is a DNS name or an IP literal, got 'http://1.2.3'"),
    ("http://010.0.0.1", f"{URL} whose host is a DNS name or an IP literal, got 'http://010.0.0.1'"),
    ("http://2130706433", f"{URL} whose host is a DNS name or an IP literal, got 'http://2130706433'"),
]


@pytest.mark.parametrize("variable", ["PAYMENT_PROBE_BASE_URL", "PAYMENT_PROBE_EVENTS_URL"])
@pytest.mark.parametrize(("value", "accepted"), URL_SHAPES)
def test_a_url_shape_that_would_mislead_is_refused(variable: str, value: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({variable: value})
    assert str(info.value) == f"{variable}: expected {accepted}"
    assert "CANARY" not in str(info.value)


@pytest.mark.parametrize("value", ["https://billing.example.com", "https://billing.example.com.", "http://10.0.0.7:8080",
                                   "https://[::1]:8443/base", "http://billing_api.internal/v2/",
                                   "https://billing.example.com/v1/%E2%82%ACuro;x=1", "http://1.2.3.4:65535/a-b_c.d~e",
                                   "https://billing.example.com/api/v1:beta@2"])
def test_good_url_shapes_are_kept(value: str) -> None:
    assert load_config({"PAYMENT_PROBE_BASE_URL": value}).base_url == value.rstrip("/")


def test_a_webhook_path_outside_printable_ascii_is_refused() -> None:
    for value in ("/razorpay/€", "/hook?x=1", "/hook#x", "/ho ok"):
        with pytest.raises(ConfigError) as info:
            load_config({"PAYMENT_PROBE_WEBHOOK_PATH": value})
        assert str(info.value) == ("PAYMENT_PROBE_WEBHOOK_PATH: expected an absolute path of printable ASCII "
                                   "without spaces, '?' or '#'")


def test_a_pytest_option_is_checked_like_its_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({}, api_token="tok\r\nX-Injected: yes")
    assert str(info.value) == f"--api-token: expected {CONTROL}"
    with pytest.raises(ConfigError) as info:
        load_config({}, api_token="tök")
    assert str(info.value) == f"--api-token: expected {HEADER}"


# ---- <SECRET>_FILE ----

SECRETS = ["PAYMENT_PROBE_API_TOKEN", "RAZORPAY_TEST_WEBHOOK_SECRET", "NEW_RELIC_INSERT_KEY", "PAYMENT_PROBE_DATABASE_URL"]


def _reveal(config: Any, variable: str) -> str:
    field = {"PAYMENT_PROBE_API_TOKEN": "api_token", "RAZORPAY_TEST_WEBHOOK_SECRET": "webhook_secret",
             "NEW_RELIC_INSERT_KEY": "new_relic_insert_key", "PAYMENT_PROBE_DATABASE_URL": "database_url"}[variable]
    return str(getattr(config, field).reveal())


@pytest.mark.parametrize("variable", SECRETS)
@pytest.mark.parametrize(("content", "expected"), [("V\n", "V"), ("V", "V"), ("V\r\n", "V"), ("V\n\n", "V"),
                                                  ("V\nX", None)],
                         ids=["newline", "bare", "crlf", "two-newlines-trimmed-as-any-value", "two-lines"])
def test_a_secret_can_come_from_a_file(variable: str, content: str, expected: str | None, tmp_path: Path) -> None:
    value = "postgresql://u:CANARYpw@db/x" if variable == "PAYMENT_PROBE_DATABASE_URL" else "CANARY-secret-1"
    path = tmp_path / "secret"
    path.write_text(content.replace("V", value), encoding="utf-8")
    if expected is None:  # a newline inside the value is a control character
        with pytest.raises(ConfigError) as info:
            load_config({f"{variable}_FILE": str(path)})
        assert str(info.value) == f"{variable}: expected {CONTROL}"
        return
    assert _reveal(load_config({f"{variable}_FILE": str(path)}), variable) == expected.replace("V", value)


@pytest.mark.parametrize("variable", SECRETS)
def test_bad_secret_files_are_named_never_shown(variable: str, tmp_path: Path) -> None:
    name = f"{variable}_FILE"
    readable = tmp_path / "ok"
    readable.write_text("CANARY-one\n")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00CANARY")
    cases = [
        ({name: str(tmp_path / "missing")}, f"{name}: expected the path of a readable UTF-8 file holding the secret"),
        ({name: str(tmp_path)}, f"{name}: expected {NOT_REGULAR}"),
        ({name: str(binary)}, f"{name}: expected the path of a readable UTF-8 file holding the secret"),
        ({name: str(empty)}, f"{name}: expected a file holding the secret, not an empty one"),
        ({name: str(readable), variable: "CANARY-two"}, f"{name}: expected either {variable} or {name}, not both"),
    ]
    for env, message in cases:
        with pytest.raises(ConfigError) as info:
            load_config(env)
        assert str(info.value) == message
        assert "CANARY" not in str(info.value)


NOT_REGULAR = "a regular file holding the secret (not a FIFO, device or directory)"
TOO_LARGE = "a file of at most 64 KiB holding the secret"


def test_secret_files_that_would_block_or_blow_up_are_exit_2_from_the_runner(tmp_path: Path) -> None:
    """Issue 26 #5: a FIFO with no writer blocked start-up forever, /dev/zero was a MemoryError traceback
    and exit 1, a 200 MB file reached 1.4 GB RSS. Each is now exit 2 naming the variable (a hang would hit
    the subprocess timeout; the RSS of the refused 200 MB file stays that of a start-up)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge"
    with open(huge, "wb") as handle:  # sparse: 200 MB that costs no disk
        handle.truncate(200 * 1024 * 1024)
    over = tmp_path / "over"
    over.write_text("a" * (64 * 1024 + 1))
    link = tmp_path / "link-to-fifo"
    link.symlink_to(fifo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYMENT_PROBE_", "NEW_RELIC_", "RAZORPAY_"))}
    env.update({"PAYMENT_PROBE_ENABLED": "1", "PAYMENT_PROBE_BASE_URL": "http://127.0.0.1:1"})
    for path, accepted in ((fifo, NOT_REGULAR), (link, NOT_REGULAR), ("/dev/zero", NOT_REGULAR),
                           (huge, TOO_LARGE), (over, TOO_LARGE)):
        proc = subprocess.run([sys.executable, "-c", "import resource, runner.cli, sys; code = runner.cli.main("
                               "['run', '--once']); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); "
                               "sys.exit(code)"], env={**env, "PAYMENT_PROBE_API_TOKEN_FILE": str(path)},
                              capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent)
        assert proc.returncode == 2, (path, proc.stderr)
        assert proc.stderr.strip().splitlines() == [f"payment-probe: PAYMENT_PROBE_API_TOKEN_FILE: expected {accepted}"]
        assert int(proc.stdout.strip()) < 200 * 1024, path  # KiB: nothing near the file's size was read
        print(f"{path}: exit 2, peak RSS {int(proc.stdout.strip()) / 1024:.0f} MB")
    exact = tmp_path / "exact"
    exact.write_text("a" * (64 * 1024))
    assert load_config({"PAYMENT_PROBE_API_TOKEN_FILE": str(exact)}).api_token.reveal() == "a" * (64 * 1024)  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ["collector:4318/v1/traces?api_key=CANARYotel", "ftp://collector:4318",
                                   "http://", "http://collector:0", "http://col lector:4318", "http://collector:99999"])
@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_an_otlp_endpoint_is_checked_at_start_and_never_shown(variable: str, value: str) -> None:
    """Issue 26 #7: a scheme-less endpoint with a key in its query reached the SDK, whose own logger
    printed it on a raw stderr line. Now: exit 2 naming the variable, the value never shown."""
    with pytest.raises(ConfigError) as info:
        load_config({variable: value})
    assert str(info.value) == f"{variable}: expected an absolute http:// or https:// URL of the OTLP collector"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYMENT_PROBE_", "NEW_RELIC_", "RAZORPAY_", "OTEL_"))}
    env.update({"PAYMENT_PROBE_ENABLED": "1", "PAYMENT_PROBE_BASE_URL": "http://127.0.0.1:1", variable: value})
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "run", "--once"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"payment-probe: {info.value}"]


def test_an_otlp_endpoints_query_values_are_secrets() -> None:
    config = load_config({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector:4318/v1/traces?api_key=CANARYq1&x=%41b"})
    assert "CANARYq1" in config.secrets() and "Ab" in config.secrets()


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
     ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/v1/traces", None, 5.0)),
    # The traces variable wins, and is the URL itself; so do its headers; a timeout over 100 is milliseconds.
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/t",
      "OTEL_EXPORTER_OTLP_HEADERS": "k=general", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "k=traces",
      "OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_SERVICE_NAME": "probe-eu"},
     ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:4318/t", "k=traces", 2.5)),
    # Seconds (older SDKs), never over 5 s; the traces timeout before the general one; no number: passed over.
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "3",
      "OTEL_EXPORTER_OTLP_TIMEOUT": "1"}, ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318/v1/traces", None, 3.0)),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "soon",
      "OTEL_EXPORTER_OTLP_TIMEOUT": "60"}, ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318/v1/traces", None, 5.0)),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_SDK_DISABLED": " TRUE "}, None),
])
def test_the_trace_export_is_read_once_at_start(env: dict[str, str], expected: tuple[Any, ...] | None) -> None:
    """Issue 28: traces.py read the OTEL_* variables again from os.environ, unchecked; now the
    settings carry them, and the tracer (controller or worker) is built from the settings alone."""
    export = load_config(env).trace_export
    if expected is None:
        assert export is None
        return
    assert export is not None
    variable, endpoint, headers, timeout = expected
    assert (export.variable, export.endpoint.reveal(), export.headers.reveal() if export.headers else None,
            export.timeout_seconds) == (variable, endpoint, headers, timeout)
    assert export.service_name == env.get("OTEL_SERVICE_NAME", "payment-probe")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("CANARY\n")
    path.chmod(0)
    with pytest.raises(ConfigError) as info:
        load_config({"PAYMENT_PROBE_API_TOKEN_FILE": str(path)})
    assert str(info.value) == "PAYMENT_PROBE_API_TOKEN_FILE: expected the path of a readable UTF-8 file holding the secret"


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("PAYMENT_PROBE_API_TOKEN", "tok123\r\nX-Injected: yes\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: evil",
     f"PAYMENT_PROBE_API_TOKEN: expected {CONTROL}"),
    ("NEW_RELIC_INSERT_KEY", "nrkey\r\nX-Evil-Header: injected", f"NEW_RELIC_INSERT_KEY: expected {CONTROL}"),
    ("PAYMENT_PROBE_BASE_URL", "http://127.0.0.1:1/?", f"PAYMENT_PROBE_BASE_URL: expected {URL} without a query or fragment ('?', '#')"),
], ids=["token-smuggling", "new-relic-key-injection", "base-url-query"])
def test_the_runner_refuses_injections_at_start(variable: str, value: str, message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYMENT_PROBE_", "NEW_RELIC_", "RAZORPAY_"))}
    env.update({"PAYMENT_PROBE_ENABLED": "1", "PAYMENT_PROBE_BASE_URL": "http://127.0.0.1:1", variable: value})
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "run", "--once"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"payment-probe: {message}"]
    assert "Injected" not in proc.stderr and "Evil" not in proc.stderr and "nrkey" not in proc.stderr


# ---- cadence (SPEC 18) ----------------------------------------------------------------------------

def test_interval_seconds_is_every_leg_the_overrides_do_not_name() -> None:
    config = load_config({"PAYMENT_PROBE_INTERVAL_SECONDS": "300",
                          "PAYMENT_PROBE_LEG_INTERVALS": " checkout_reachable=60 , webhook_security=60"})
    assert config.interval_of("checkout_reachable") == config.interval_of("webhook_security") == 60.0
    assert {config.interval_of(leg) for leg in LEGS if leg not in ("checkout_reachable", "webhook_security")} == {300.0}
    assert config.tick_seconds == 60.0
    assert load_config({"PAYMENT_PROBE_INTERVAL_SECONDS": "300"}).tick_seconds == 300.0  # the old single cadence


def test_a_tick_runs_the_legs_whose_interval_divides_its_time() -> None:
    config = load_config({})
    every_minute = ("checkout_reachable", "billing_state", "invoices_reachable", "webhook_security")
    assert config.due_legs(1_800_000_060.0) == every_minute  # a minute that is not a 5-minute mark
    assert config.due_legs(1_800_000_300.0) == (*every_minute, "upgrade_webhook_e2e", "webhook_replay")
    assert config.due_legs(1_800_000_900.0) == (*every_minute, "upgrade_webhook_e2e", "tls_certificate",
                                                "webhook_replay")  # 900 divides it: the certificate too
    assert config.due_legs(1_800_000_120.0) == (*every_minute, "provider_webhook_health")
    assert config.due_legs(1_800_001_800.0) == config.legs  # every interval divides it
    assert config.due_legs(1_800_000_030.0) == ()  # not a tick at all


@pytest.mark.parametrize(("env", "variable"), [
    ({"PAYMENT_PROBE_LEG_INTERVALS": "nope=60"}, "PAYMENT_PROBE_LEG_INTERVALS"),  # an unknown leg
    ({"PAYMENT_PROBE_LEG_INTERVALS": "billing_state"}, "PAYMENT_PROBE_LEG_INTERVALS"),
    ({"PAYMENT_PROBE_LEG_INTERVALS": "billing_state=0"}, "PAYMENT_PROBE_LEG_INTERVALS"),
    ({"PAYMENT_PROBE_LEG_INTERVALS": "billing_state=soon"}, "PAYMENT_PROBE_LEG_INTERVALS"),
    ({"PAYMENT_PROBE_LEG_INTERVALS": "billing_state=60,billing_state=30"}, "PAYMENT_PROBE_LEG_INTERVALS"),
    ({"PAYMENT_PROBE_LEG_INTERVALS": "checkout_reachable=45"}, "PAYMENT_PROBE_LEG_INTERVALS"),  # 60 is not 45 x n
    ({"PAYMENT_PROBE_INTERVAL_SECONDS": "7", "PAYMENT_PROBE_LEG_INTERVALS": "billing_state=10"},
     "PAYMENT_PROBE_LEG_INTERVALS"),
    ({"PAYMENT_PROBE_LEGS": "checkout_reachable,nope"}, "PAYMENT_PROBE_LEGS"),
    ({"PAYMENT_PROBE_LEGS": ","}, "PAYMENT_PROBE_LEGS"),
])
def test_a_cadence_the_loop_cannot_keep_is_exit_2_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env)
    assert info.value.variable == variable
    assert str(info.value).startswith(f"{variable}: expected ")


def test_the_multiple_rule_counts_only_the_selected_legs() -> None:
    # 45 s and 60 s could not share a tick; leaving the 60 s legs out makes 45 the shortest and fine.
    config = load_config({"PAYMENT_PROBE_LEGS": "checkout_reachable, tls_certificate",
                          "PAYMENT_PROBE_LEG_INTERVALS": "checkout_reachable=45"})
    assert config.legs == ("checkout_reachable", "tls_certificate") and config.tick_seconds == 45.0
