"""No secret leaves by any path (SPEC section 4, last paragraph): a canary in every secret.

Unique canary values for the API token, the webhook secret, the database password, the New
Relic key and the client key's contents; every leg failing in turn; pytest's own output at
every ``--tb`` with and without ``-l``, ``-rA``, ``-vv``, ``-n 2``, JUnit XML, ``--probe-json``;
``run --once`` (and ``--json``); a configuration error on each URL variable; an events endpoint
that redirects. Every stdout, stderr and file written is searched for every canary, and for
the signature the run actually sent.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from sandbox.server import SandboxServer
from sandbox.tls import make_tls

from conftest import PLAN_ID, query
from support.processes import cli, pytest_cli

CANARY = "LEAKCANARY"
TOKEN = f"tok_{CANARY}_api_4411"
HOOK = f"whsec_{CANARY}_hook_8820"
DB_PASSWORD = f"pw_{CANARY}_db_7312"
NR_KEY = f"NRII-{CANARY}-key-5150"
OTEL_KEY = f"otel{CANARY}hdr7741"
FAULTS = ["billing_500", "webhook_accept_unsigned", "upgrade_no_flip", "checkout_502_html", "invoices_hang"]


@pytest.fixture
def leaky(sandbox: SandboxServer, database_url: str, pg_server: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a run whose every secret is a canary, every leg able to fail."""
    role = f"canary_{uuid.uuid4().hex[:6]}"
    query(pg_server, f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{DB_PASSWORD}'")
    parts = urlsplit(database_url)
    db_url = urlunsplit(parts._replace(netloc=f"{role}:{DB_PASSWORD}@{parts.hostname}:{parts.port}"))
    sandbox.settings.webhook_secret = HOOK
    sandbox.settings.api_token = TOKEN
    sandbox.faults.replace(FAULTS)
    mtls = make_tls(tmp_path / "client-ca.pem", require_client_cert=True)  # a client key file to keep in
    assert mtls.client_key_path is not None
    key_lines = [ln for ln in mtls.client_key_path.read_text().splitlines() if "-----" not in ln]
    tls = sandbox.settings.tls
    assert tls is not None
    return {
        "PAYMENT_PROBE_BASE_URL": sandbox.url, "PAYMENT_PROBE_API_TOKEN": TOKEN,
        "PAYMENT_PROBE_DATABASE_URL": db_url, "RAZORPAY_TEST_WEBHOOK_SECRET": HOOK,
        "PAYMENT_PROBE_TEST_PLAN_ID_PRO": PLAN_ID, "NEW_RELIC_ACCOUNT_ID": "1234567", "NEW_RELIC_INSERT_KEY": NR_KEY,
        "PAYMENT_PROBE_EVENTS_URL": "http://127.0.0.1:9/v1/accounts/1234567/events",
        "PAYMENT_PROBE_CA_BUNDLE": str(tls.ca_path), "PAYMENT_PROBE_CLIENT_CERT": str(mtls.client_cert_path),
        "PAYMENT_PROBE_CLIENT_KEY": str(mtls.client_key_path), "PAYMENT_PROBE_SPOOL_DIR": str(tmp_path / "spool"),
        "PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS": "2", "PAYMENT_PROBE_UPGRADE_WAIT_SECONDS": "1",
        # A vendor's API key in the OTLP headers, and a collector that is down: the export fails and is logged.
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={OTEL_KEY}",
        # The runner confirms each failure once, at once: its retried attempts' reports are scrubbed too.
        "PAYMENT_PROBE_CONFIRM_RETRIES": "1", "PAYMENT_PROBE_CONFIRM_DELAY_SECONDS": "0",
        "_KEY_LINE": max(key_lines, key=len),
    }


def _signatures(sandbox: SandboxServer) -> list[str]:
    """The X-Razorpay-Signature values the sandbox received (the real, valid ones included)."""
    return [r["headers"]["X-Razorpay-Signature"] for r in sandbox.requests if "X-Razorpay-Signature" in r["headers"]]


def _assert_clean(blobs: dict[str, str], extra: list[str]) -> None:
    for where, text in blobs.items():
        for needle in [CANARY, *extra]:
            assert needle not in text, f"{needle[:12]}… leaked through {where}"


def _files(directory: Path) -> dict[str, str]:
    return {str(p): p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file()}


TB = ["auto", "long", "short", "native"]
PYTEST_MATRIX = [[f"--tb={tb}", *extra] for tb, extra in itertools.product(TB, [[], ["-l", "-rA", "-vv"]])]
PYTEST_MATRIX += [["-n", "2", "--tb=long", "-l", "-rA"], ["-n", "2", "--tb=native", "-vv"],
                  ["--tb=long", "-l", "--full-trace"]]


@pytest.mark.parametrize("flags", PYTEST_MATRIX, ids=lambda f: " ".join(f))
def test_pytest_output_and_files_keep_every_secret(leaky: dict[str, str], sandbox: SandboxServer,
                                                   tmp_path: Path, flags: list[str]) -> None:
    key_line = leaky.pop("_KEY_LINE")
    out = tmp_path / "artifacts"
    out.mkdir()
    proc = pytest_cli("-m", "prod_safe or upgrade", f"--junitxml={out / 'j.xml'}", f"--probe-json={out / 'o.json'}",
                      f"--probe-log={out / 'o.jsonl'}", *flags, env=leaky)
    assert proc.returncode == 1, proc.stdout[-3000:]  # the legs failed: the matrix saw failure output
    assert "unsigned_accepted" in proc.stdout and "tier_not_flipped" in proc.stdout
    signatures = _signatures(sandbox)
    assert signatures, "the upgrade leg sent a real signature"
    _assert_clean({"stdout": proc.stdout, "stderr": proc.stderr, **_files(out), **_files(tmp_path / "spool")},
                  [*signatures, key_line, TOKEN, HOOK, DB_PASSWORD, NR_KEY, OTEL_KEY])


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["once", "once-json"])
def test_the_runner_keeps_every_secret(leaky: dict[str, str], sandbox: SandboxServer, tmp_path: Path,
                                       json_flag: list[str]) -> None:
    key_line = leaky.pop("_KEY_LINE")
    proc = cli("run", "--once", *json_flag, env={**leaky, "PAYMENT_PROBE_ENABLED": "1"}, timeout=180)
    assert proc.returncode == 1
    _assert_clean({"stdout": proc.stdout, "stderr": proc.stderr, **_files(tmp_path / "spool")},
                  [*_signatures(sandbox), key_line])


@pytest.mark.parametrize("variable", ["PAYMENT_PROBE_BASE_URL", "PAYMENT_PROBE_EVENTS_URL", "--base-url"])
@pytest.mark.parametrize("bad", ["https://probe:{pw}@host:44x3", "htps://probe:{pw}@host", "https://probe:{pw}@[::1"])
def test_configuration_errors_name_the_variable_without_the_password(variable: str, bad: str) -> None:
    value = bad.format(pw=DB_PASSWORD)
    if variable == "--base-url":
        proc = pytest_cli("--base-url", value, env={})
        text = proc.stdout + proc.stderr
    else:
        proc = cli("run", "--once", env={"PAYMENT_PROBE_ENABLED": "1", variable: value})
        text = proc.stderr
        assert proc.stderr.strip().splitlines()[0].startswith(f"payment-probe: {variable}: expected an absolute")
    assert proc.returncode in (2, 4)  # 4: pytest's usage error
    assert variable in text and CANARY not in text and "//probe:" not in text


def test_help_and_version_carry_no_secret(leaky: dict[str, str]) -> None:
    leaky.pop("_KEY_LINE")
    texts = [cli(*args, env=leaky).stdout for args in (["--help"], ["run", "--help"], ["sandbox", "--help"])]
    texts.append(pytest_cli("--help", env=leaky).stdout)
    assert all(t.strip() for t in texts)
    _assert_clean({f"help {i}": t for i, t in enumerate(texts)}, [TOKEN, HOOK, DB_PASSWORD, NR_KEY])
    # pytest's help lists both plugins' options: the secrets were checked against the help that has them
    assert "--base-url" in texts[-1] and "--probe-json" in texts[-1] and "--probe-fail-on" in texts[-1]


# Secrets whose escaped forms differ from their values (a backslash, a quote) or that hold a
# character the old bearer pattern stopped at (``;``), all delivered through ``_FILE``.
ODD_TOKEN = f"tok{CANARY}\\TOK;SUFFIXLEAK42"
ODD_HOOK = f"whsec_{CANARY}\"quote'd;HOOKTAIL77"


@pytest.mark.parametrize("how", ["pytest", "runner"])
def test_escaped_and_semicolon_secrets_from_files_keep_home(leaky: dict[str, str], sandbox: SandboxServer,
                                                            tmp_path: Path, how: str) -> None:
    key_line = leaky.pop("_KEY_LINE")
    sandbox.settings.api_token = ODD_TOKEN
    sandbox.settings.webhook_secret = ODD_HOOK
    env = dict(leaky)
    for variable, value in (("PAYMENT_PROBE_API_TOKEN", ODD_TOKEN), ("RAZORPAY_TEST_WEBHOOK_SECRET", ODD_HOOK),
                            ("NEW_RELIC_INSERT_KEY", NR_KEY), ("PAYMENT_PROBE_DATABASE_URL", env[
                                "PAYMENT_PROBE_DATABASE_URL"])):
        path = tmp_path / f"{variable.lower()}.secret"
        path.write_text(value + "\n")
        env.pop(variable)
        env[f"{variable}_FILE"] = str(path)
    out = tmp_path / "artifacts"
    out.mkdir()
    if how == "pytest":
        proc = pytest_cli("-m", "prod_safe or upgrade", f"--junitxml={out / 'j.xml'}", f"--probe-json={out / 'o.json'}",
                          f"--probe-log={out / 'o.jsonl'}", "-vv", "-l", "--tb=long", "-rA", env=env)
    else:
        proc = cli("run", "--once", "--json", env={**env, "PAYMENT_PROBE_ENABLED": "1"}, timeout=180)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    # The token was read from its file and sent: the sandbox let the billing legs in (its faults
    # still fail them), and the upgrade leg signed with the file's secret.
    assert "unsigned_accepted" in proc.stdout + proc.stderr and "tier_not_flipped" in proc.stdout + proc.stderr
    assert _signatures(sandbox)
    _assert_clean({"stdout": proc.stdout, "stderr": proc.stderr, **_files(out), **_files(tmp_path / "spool")},
                  [*_signatures(sandbox), key_line, "SUFFIXLEAK42", "HOOKTAIL77", "TOK;", repr(ODD_TOKEN)[1:-1]])
