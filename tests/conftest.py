"""Shared fixtures of the project's own suite: a real Postgres, the real sandbox, real runs.

The cluster is embedded (started once per session) unless PAYMENT_PROBE_DATABASE_URL names
one; every test that touches tables gets its own fresh database in it, so tests never see
each other's rows.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

warnings.filterwarnings("ignore", module="platformdirs")

from runner.embedded_pg import EmbeddedPostgres, free_port  # noqa: E402, F401 - free_port: the tests' one
from runner.legrun import LegRunner  # noqa: E402
from runner.signals.controller import SignalsPlugin  # noqa: E402
from runner.signals.outcome import Outcome  # noqa: E402
from runner.signals.sink import MemorySink  # noqa: E402
from sandbox.server import SandboxServer, SandboxSettings, ensure_teams_table, start  # noqa: E402
from sandbox.tls import make_tls  # noqa: E402
from synthetics.config import ProbeConfig, load_config  # noqa: E402
from synthetics.registry import LEGS as REGISTRY_LEGS  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
WEBHOOK_SECRET = "whsec_tests_5f1e0c"
PLAN_ID = "plan_test_pro_tests"
pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The server URL (its ``postgres`` database); embedded unless the env names one."""
    external = os.environ.get("PAYMENT_PROBE_DATABASE_URL")
    if external:
        yield external
        return
    with EmbeddedPostgres() as pg:
        yield pg.url


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
def database_url(pg_server: str) -> Iterator[str]:
    """A fresh database with the ``teams`` table, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = _with_database(pg_server, name)
    ensure_teams_table(url)
    yield url
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def sandbox(database_url: str, tmp_path: Path) -> Iterator[SandboxServer]:
    """The reference API over HTTPS with a private CA, as production billing APIs are served."""
    tls = make_tls(tmp_path / "sandbox-ca.pem", cert_days=90)
    server = start(SandboxSettings(database_url=database_url, webhook_secret=WEBHOOK_SECRET,
                                   plan_id_pro=PLAN_ID, slow_seconds=0.6, flip_delay_seconds=1.0, tls=tls))
    yield server
    server.stop()


def ca_of(sandbox: SandboxServer) -> str:
    """The sandbox's CA bundle path ('' for a plain-HTTP sandbox)."""
    return str(sandbox.settings.tls.ca_path) if sandbox.settings.tls else ""


def provider_env(sandbox: SandboxServer) -> dict[str, str]:
    """What the provider legs need to ask the sandbox, which is the payment provider too (SPEC 17)."""
    env = {"PAYMENT_PROBE_PROVIDER_API_URL": sandbox.url,
           "PAYMENT_PROBE_RAZORPAY_ACCOUNT_ID": sandbox.settings.razorpay_account_id}
    if sandbox.settings.provider_api_key:
        env["PAYMENT_PROBE_PROVIDER_API_KEY"] = sandbox.settings.provider_api_key
    if sandbox.settings.provider_test_key:
        env["PAYMENT_PROBE_PROVIDER_TEST_KEY"] = sandbox.settings.provider_test_key
    return env


# The legs that look at the billing API itself: what the default test environment runs. The provider legs
# (SPEC 17) ask the payment provider (the sandbox too) and have their own tests (test_provider_*.py), which
# add provider_env() and name them in PAYMENT_PROBE_LEGS.
PROVIDER_LEGS = ("provider_webhook_health", "provider_roundtrip")
LEGS = {name: leg for name, leg in REGISTRY_LEGS.items() if name not in PROVIDER_LEGS}


def probe_env(sandbox: SandboxServer, database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment a runner needs to probe the sandbox with every leg able to pass."""
    env = {
        "PAYMENT_PROBE_ENABLED": "1",
        "PAYMENT_PROBE_BASE_URL": sandbox.url,
        "PAYMENT_PROBE_DATABASE_URL": database_url,
        "RAZORPAY_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PAYMENT_PROBE_TEST_PLAN_ID_PRO": PLAN_ID,
        "PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS": "2",
        "PAYMENT_PROBE_LEG_TIMEOUT_SECONDS": "8",
        "PAYMENT_PROBE_UPGRADE_WAIT_SECONDS": "3",
        "PAYMENT_PROBE_SPOOL_DIR": str(tmp_path / "spool"),
        "PAYMENT_PROBE_METRICS_HOST": "127.0.0.1",
        "PAYMENT_PROBE_REPLAY_SETTLE_SECONDS": "0.3",  # webhook_replay's hold: a wait, not work
        # Exact outcomes per run: the confirmation's retries are tested on their own (test_confirm).
        "PAYMENT_PROBE_CONFIRM_RETRIES": "0",
        "PAYMENT_PROBE_LEGS": ",".join(LEGS),
    }
    if sandbox.settings.tls:
        env["PAYMENT_PROBE_CA_BUNDLE"] = ca_of(sandbox)
    env.update(extra)
    return env


@dataclass
class Probe:
    """Runs the real legs in-process against the sandbox and returns outcomes by leg."""

    sandbox: SandboxServer
    database_url: str
    tmp_path: Path

    def config(self, **extra: str) -> ProbeConfig:
        return load_config(probe_env(self.sandbox, self.database_url, self.tmp_path, **extra))

    def run(self, *faults: str, legs: str | None = None, **extra: str) -> dict[str, Outcome]:
        self.sandbox.faults.replace(faults)
        if "billing_slow" in faults:  # the sandbox's slow answer (0.6 s) must be over the budget
            extra.setdefault("PAYMENT_PROBE_SLOW_SECONDS", "0.5")
        config = self.config(**extra)
        sink = MemorySink()
        args = ["-k", legs] if legs else []
        runner = LegRunner(config, SignalsPlugin([sink]), args, quiet=True)
        report = runner.run(uuid.uuid4().hex[:12])
        return {o.leg: o for o in report.outcomes}


@pytest.fixture
def probe(sandbox: SandboxServer, database_url: str, tmp_path: Path) -> Probe:
    return Probe(sandbox, database_url, tmp_path)


RSS_CHILD = """
import json, sys, warnings
warnings.filterwarnings("ignore")
from runner.legrun import LegRunner
from runner.signals.controller import SignalsPlugin
from runner.signals.sink import MemorySink
from synthetics.config import load_config

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

config = load_config()
LegRunner(config, SignalsPlugin([MemorySink()]), ["-k", "test_billing_state"], quiet=True).run("warm")
before = peak_mb()
report = LegRunner(config, SignalsPlugin([MemorySink()]), ["-k", sys.argv[1]], quiet=True).run("measured")
print(json.dumps({"grown_mb": peak_mb() - before,
                  "outcomes": {o.leg: [o.result, o.reason] for o in report.outcomes}}))
"""


def legs_in_own_process(env: dict[str, str], legs: str) -> dict[str, Any]:
    """Run ``legs`` in a fresh process of the test's own: its peak RSS growth over a warm-up run
    is the leg's alone (the test process's high-water mark would hide it behind earlier tests)."""
    import json
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if not k.startswith(("PAYMENT_PROBE_", "RAZORPAY_", "NEW_RELIC_"))}
    proc = subprocess.run([sys.executable, "-c", RSS_CHILD, legs], env={**base, **env}, capture_output=True,
                          text=True, timeout=180, cwd=REPO, check=True)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.fixture
def clean_probe_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PAYMENT_PROBE_/NEW_RELIC_/RAZORPAY_ variable of the developer's shell leaks into a test;
    the spool goes under the test's own tmp_path."""
    for key in list(os.environ):
        if key.startswith(("PAYMENT_PROBE_", "NEW_RELIC_", "RAZORPAY_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PAYMENT_PROBE_SPOOL_DIR", str(tmp_path / "spool"))
