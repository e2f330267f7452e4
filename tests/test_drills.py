"""Fault drills: the systems around the prober misbehave; nothing is lost, nothing leaks, it goes on."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from runner.embedded_pg import EmbeddedPostgres
from runner.legrun import LegRunner
from runner.signals.controller import SignalsPlugin
from runner.signals.metrics import ProbeMetrics
from runner.signals.wiring import build_sinks, count_sink_error
from sandbox.server import SandboxServer, SandboxSettings, ensure_teams_table, start
from sandbox.tls import make_tls

from conftest import LEGS, PLAN_ID, WEBHOOK_SECRET, Probe, free_port, probe_env, query
from support.processes import cli, spawn, wait_for

BAD_ANSWERS = [
    # (fault, extra env, reason)
    ("invoices_hang", {}, "timeout"),
    ("invoices_delay_4000", {"PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS": "10",
                             "PAYMENT_PROBE_LEG_TIMEOUT_SECONDS": "1.5"}, "timeout"),  # after the leg timeout
    ("invoices_trickle", {}, "timeout"),
    ("invoices_huge", {}, "body_too_large"),
    ("invoices_bad_utf8", {}, "not_json"),
    ("invoices_deep_json", {}, "not_json"),
    ("invoices_status_503", {}, "http_status:503"),
]


def test_bad_answers_fail_with_a_reason_and_the_next_run_is_normal(probe: Probe) -> None:
    for fault, env, reason in BAD_ANSWERS:
        started = time.monotonic()
        outcome = probe.run(fault, legs="test_invoices_reachable", **env)["invoices_reachable"]
        assert (outcome.result, outcome.reason) == ("fail", reason), fault
        assert time.monotonic() - started < 8 + 2  # inside the leg timeout (8 s) plus session overhead
        healthy = probe.run(legs="not upgrade_webhook_e2e")
        assert {o.result for o in healthy.values()} == {"pass"}, fault
    # Memory stays bounded too: measured in a process of its own, test_reachability_legs.py.


def test_api_down_fails_every_http_leg_then_recovers(probe: Probe) -> None:
    alive = probe.sandbox.url
    outcomes = probe.run(legs="not upgrade_webhook_e2e", PAYMENT_PROBE_BASE_URL=f"https://127.0.0.1:{free_port()}")
    assert {(o.result, o.reason) for o in outcomes.values()} == {("fail", "connection_error")}
    outcomes = probe.run(legs="not upgrade_webhook_e2e", PAYMENT_PROBE_BASE_URL=alive)
    assert {o.result for o in outcomes.values()} == {"pass"}


@pytest.fixture
def own_pg() -> Iterator[EmbeddedPostgres]:
    """A cluster this test may stop and start (in its own mkdtemp folder, removed afterwards)."""
    pg = EmbeddedPostgres()
    pg.start()
    ensure_teams_table(pg.url)
    yield pg
    pg.destroy()


@pytest.fixture
def own_sandbox(own_pg: EmbeddedPostgres, tmp_path: Path) -> Iterator[SandboxServer]:
    server = start(SandboxSettings(database_url=own_pg.url, webhook_secret=WEBHOOK_SECRET, plan_id_pro=PLAN_ID,
                                   tls=make_tls(tmp_path / "own-ca.pem")))
    yield server
    server.stop()


def _audit_ids(url: str) -> list[str]:
    return [r[0] for r in query(url, "SELECT id::text FROM audit_log ORDER BY created_at")]


def test_postgres_down_at_start_then_back(own_pg: EmbeddedPostgres, own_sandbox: SandboxServer,
                                          tmp_path: Path) -> None:
    own_pg.stop()
    env = probe_env(own_sandbox, own_pg.url, tmp_path, PAYMENT_PROBE_INTERVAL_SECONDS="1",
                    PAYMENT_PROBE_METRICS_PORT=str(free_port()))
    proc = spawn("run", env=env)
    try:
        spool = tmp_path / "spool" / "audit-audit_log.jsonl"
        wait_for(lambda: spool.exists() and len(spool.read_text().splitlines()) >= 2 * len(LEGS), 60, "two spooled runs")
        rows = [json.loads(line) for line in spool.read_text().splitlines()]
        by_leg = {r["leg"]: (r["result"], r["reason"]) for r in rows}
        assert by_leg["upgrade_webhook_e2e"] == by_leg["webhook_replay"] == ("degraded", "mint_failed")
        assert by_leg["billing_state"] == ("pass", "ok") and by_leg["webhook_security"] == ("pass", "ok")
        own_pg.start()
        wait_for(lambda: not spool.exists(), 60, "the spool to drain")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    ids = _audit_ids(own_pg.url)
    assert len(ids) == len(set(ids)) and len(ids) >= 10
    assert {r["id"] for r in rows} <= set(ids)  # every spooled row arrived, exactly once
    assert query(own_pg.url, "SELECT count(*) FROM teams WHERE is_test_cohort") == [(0,)]
    outage_lines = [line for line in stderr.splitlines() if "spooling rows" in line]
    assert len(outage_lines) == 1  # one line per outage, not per row or per run


def test_postgres_dying_mid_upgrade_leg(own_pg: EmbeddedPostgres, own_sandbox: SandboxServer,
                                        tmp_path: Path) -> None:
    probe = Probe(own_sandbox, own_pg.url, tmp_path)
    config = probe.config(PAYMENT_PROBE_UPGRADE_WAIT_SECONDS="4")  # leg timeout 8 s
    metrics = ProbeMetrics(CollectorRegistry())
    plugin = SignalsPlugin(build_sinks(config, metrics), on_sink_error=count_sink_error(metrics))
    runner = LegRunner(config, plugin, ["-k", "test_upgrade_webhook_e2e"], quiet=True)
    own_sandbox.faults.replace(["upgrade_no_flip"])
    def kill_once_minted() -> None:  # the event itself, not a guess of how long minting takes
        wait_for(lambda: query(own_pg.url, "SELECT count(*) FROM teams WHERE is_test_cohort")[0][0] > 0,
                 60, "a minted cohort team", step=0.02)
        own_pg.stop()

    killer = threading.Thread(target=kill_once_minted)
    killer.start()
    report = runner.run("dying")
    killer.join()
    (outcome,) = report.outcomes
    assert outcome.result == "fail"
    assert outcome.reason in {"db_error", "reap_failed"}
    own_pg.start()
    own_sandbox.faults.replace([])
    time.sleep(2.6)
    swept = cli("sweep", env={"PAYMENT_PROBE_DATABASE_URL": own_pg.url, "PAYMENT_PROBE_LEG_TIMEOUT_SECONDS": "2.5"})
    assert swept.returncode == 0
    assert query(own_pg.url, "SELECT count(*) FROM teams WHERE is_test_cohort") == [(0,)]
    runner.run("after")  # flushes the spooled row too
    ids = _audit_ids(own_pg.url)
    assert outcome.id in ids and len(ids) == len(set(ids)) == 2


def test_sigkill_at_random_points_loses_nothing_logged(own_pg: EmbeddedPostgres, own_sandbox: SandboxServer,
                                                       tmp_path: Path) -> None:
    rng = random.Random(20261126)
    env = probe_env(own_sandbox, own_pg.url, tmp_path, PAYMENT_PROBE_INTERVAL_SECONDS="0.3",
                    PAYMENT_PROBE_LEG_TIMEOUT_SECONDS="1", PAYMENT_PROBE_UPGRADE_WAIT_SECONDS="0.5")
    logged_written: set[str] = set()
    for attempt in range(20):
        env["PAYMENT_PROBE_METRICS_PORT"] = str(free_port())
        proc = spawn("run", env=env)
        time.sleep(rng.uniform(0.3, 2.5))
        proc.kill()
        _, stderr = proc.communicate(timeout=10)
        for line in stderr.splitlines():
            if line.startswith("{") and "wrote " in line and "audit rows" in line:
                ids = json.loads(line)["msg"].split(": ", 1)[1]
                logged_written.update(ids.split(","))
        del attempt
    time.sleep(1.1)  # older than the leg timeout, so the sweep may take any orphan
    final = cli("run", "--once", env=env)
    assert final.returncode == 0, final.stderr
    assert query(own_pg.url, "SELECT count(*) FROM teams WHERE is_test_cohort") == [(0,)]
    ids = _audit_ids(own_pg.url)
    assert len(ids) == len(set(ids))
    assert logged_written and logged_written <= set(ids)
    assert all(uuid.UUID(i) for i in logged_written)
