"""The runner as a process: run --once --json, flag-off inertness, one prober per cluster,
crash safety (SIGKILL, SIGTERM), resilience of the loop, and its HTTP endpoints."""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry

from runner.legrun import LegRunner, RunReport
from runner.loop import Runner
from runner.signals.controller import SignalsPlugin
from runner.signals.metrics import ProbeMetrics
from runner.signals.sink import MemorySink
from sandbox.server import SandboxServer
from synthetics.run import RunContext

from conftest import LEGS, Probe, free_port, probe_env, query
from receivers import ConnectionCounter
from support.processes import cli, spawn, wait_for


@pytest.fixture
def env(sandbox: SandboxServer, database_url: str, tmp_path: Path) -> dict[str, str]:
    return probe_env(sandbox, database_url, tmp_path)


# ---- run --once --json -------------------------------------------------------------------------

def test_once_json_all_pass(env: dict[str, str]) -> None:
    proc = cli("run", "--once", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    outcomes = json.loads(proc.stdout)  # stdout is the JSON and nothing else
    assert [set(o) for o in outcomes] == [{"leg", "result", "severity", "reason", "latency_seconds"}] * len(LEGS)
    assert {o["result"] for o in outcomes} == {"pass"}


@pytest.mark.parametrize(("fault", "code", "leg", "result", "severity", "reason"), [
    ("webhook_accept_unsigned", 1, "webhook_security", "fail", "critical", "unsigned_accepted"),
    ("checkout_500", 1, "checkout_reachable", "fail", "error", "http_status:500"),
    ("billing_429", 0, "billing_state", "degraded", "warning", "http_status:429"),
    ("checkout_402", 0, "checkout_reachable", "pass", "info", "ok"),
    ("upgrade_no_flip", 1, "upgrade_webhook_e2e", "fail", "error", "tier_not_flipped"),
])
def test_once_json_with_a_fault(sandbox: SandboxServer, env: dict[str, str], fault: str, code: int, leg: str,
                                result: str, severity: str, reason: str) -> None:
    sandbox.faults.replace([fault])
    proc = cli("run", "--once", "--json", env={**env, "PAYMENT_PROBE_UPGRADE_WAIT_SECONDS": "1"})
    assert proc.returncode == code, proc.stderr
    by_leg = {o["leg"]: o for o in json.loads(proc.stdout)}
    assert (by_leg[leg]["result"], by_leg[leg]["severity"], by_leg[leg]["reason"]) == (result, severity, reason)
    moved = {leg, "webhook_replay"} if fault == "upgrade_no_flip" else {leg}  # both money-path legs
    assert all(by_leg[name]["reason"] == reason for name in moved)
    assert all(o["result"] == "pass" for name, o in by_leg.items() if name not in moved)


def test_once_degraded_only_exits_0(env: dict[str, str]) -> None:
    proc = cli("run", "--once", "--json", env={**env, "RAZORPAY_TEST_WEBHOOK_SECRET": ""})
    assert proc.returncode == 0
    by_leg = {o["leg"]: o for o in json.loads(proc.stdout)}
    assert by_leg["upgrade_webhook_e2e"]["reason"] == "config_missing:RAZORPAY_TEST_WEBHOOK_SECRET"


# ---- the flag --------------------------------------------------------------------------------

def test_flag_off_once_touches_nothing() -> None:
    api, db = ConnectionCounter(), ConnectionCounter()
    try:
        proc = cli("run", "--once", "--json", env={
            "PAYMENT_PROBE_BASE_URL": f"http://127.0.0.1:{api.port}",
            "PAYMENT_PROBE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{db.port}/x",
        })
    finally:  # the process has exited; stop() counts whatever still sits in the backlog
        api.stop()
        db.stop()
    assert proc.returncode == 0
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "payment-probe: disabled (PAYMENT_PROBE_ENABLED is off); no legs run"]
    assert (api.count, db.count) == (0, 0)


def test_flag_off_loop_is_inert_from_outside() -> None:
    api, db = ConnectionCounter(), ConnectionCounter()
    port = free_port()
    proc = spawn("run", env={
        "PAYMENT_PROBE_ENABLED": "off",
        "PAYMENT_PROBE_BASE_URL": f"http://127.0.0.1:{api.port}",
        "PAYMENT_PROBE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{db.port}/x",
        "PAYMENT_PROBE_INTERVAL_SECONDS": "0.2",
        "PAYMENT_PROBE_METRICS_PORT": str(port), "PAYMENT_PROBE_METRICS_HOST": "127.0.0.1",
    })
    try:
        metrics = wait_for(lambda: _get(f"http://127.0.0.1:{port}/metrics"), 20, "/metrics")
        time.sleep(1.5)  # several intervals
        metrics = _get(f"http://127.0.0.1:{port}/metrics")
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
        api.stop()
        db.stop()
    assert proc.returncode == 0
    assert "instant_payment_probe_enabled{location=\"local\"} 0.0" in metrics
    samples = [line for line in metrics.splitlines() if not line.startswith("#")]
    assert not [line for line in samples if line.startswith(("instant_payment_probe_outcome",
                                                              "instant_payment_probe_latency"))]
    assert health.status_code == 200 and health.json()["enabled"] is False
    assert (api.count, db.count) == (0, 0)
    assert sum("disabled" in line for line in stderr.splitlines()) == 1


def _get(url: str) -> str | None:
    try:
        resp = requests.get(url, timeout=2)
    except requests.RequestException:
        return None
    return resp.text if resp.ok else None


# ---- the long-lived process --------------------------------------------------------------------

@pytest.fixture
def runner_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "PAYMENT_PROBE_INTERVAL_SECONDS": "1", "PAYMENT_PROBE_METRICS_PORT": str(free_port())}


def _runs(database_url: str) -> int:
    import psycopg

    try:
        return int(query(database_url, "SELECT count(DISTINCT run_id) FROM audit_log")[0][0])
    except psycopg.errors.UndefinedTable:
        return 0  # the runner has not migrated yet


def test_enabled_loop_serves_primed_metrics_and_runs(runner_env: dict[str, str], database_url: str) -> None:
    port = runner_env["PAYMENT_PROBE_METRICS_PORT"]
    proc = spawn("run", env=runner_env)
    try:
        wait_for(lambda: _runs(database_url) >= 2, 40, "two runs")
        metrics = _get(f"http://127.0.0.1:{port}/metrics") or ""
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert health.status_code == 200
    assert 'instant_payment_probe_outcome_total{leg="billing_state",location="local",result="fail"} 0.0' in metrics
    assert "instant_payment_probe_enabled{location=\"local\"} 1.0" in metrics
    last_run = [line for line in metrics.splitlines()
                if line.startswith('instant_payment_probe_last_run_timestamp_seconds{location="local"} ')]
    assert last_run and abs(float(last_run[0].rsplit(" ", 1)[1]) - time.time()) < 30


def test_busy_metrics_port_exits_2(runner_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        proc = cli("run", env={**runner_env, "PAYMENT_PROBE_METRICS_PORT": str(port)})
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"payment-probe: PAYMENT_PROBE_METRICS_PORT: port {port} on 127.0.0.1 is not available")


def test_audit_table_lacking_columns_exits_2(runner_env: dict[str, str], database_url: str) -> None:
    query(database_url, "CREATE TABLE audit_log (id uuid PRIMARY KEY, leg text)")
    proc = cli("run", "--once", env=runner_env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "payment-probe: PAYMENT_PROBE_AUDIT_TABLE: table audit_log lacks columns created_at, actor, action, "
        "run_id, result, severity, reason, latency_ms, environment, metadata")


def test_two_replicas_run_each_slot_once_and_fail_over(runner_env: dict[str, str], database_url: str) -> None:
    a = spawn("run", env=runner_env)
    b = spawn("run", env={**runner_env, "PAYMENT_PROBE_METRICS_PORT": str(free_port())})
    try:
        wait_for(lambda: _runs(database_url) >= 4, 60, "four runs")
        # Both started on a fresh database at once (their table creation must not race) and live.
        assert a.poll() is None and b.poll() is None
        slots = query(database_url, "SELECT replica FROM payment_probe_slots")
        assert _runs(database_url) <= len(slots)  # never a run without a claimed slot (exactness: below)
        leader = slots[0][0]
        assert {r[0] for r in slots} == {leader}
        # SIGKILL whichever replica leads; the other takes the next slots
        assert _leader_is(a, leader) != _leader_is(b, leader)
        victim = a if _leader_is(a, leader) else b
        survivor = b if victim is a else a
        victim.kill()
        victim.communicate(timeout=10)
        before = _runs(database_url)
        try:
            wait_for(lambda: _runs(database_url) >= before + 2, 60, "runs after failover")
        except AssertionError:
            survivor.terminate()
            _, err = survivor.communicate(timeout=60)
            raise AssertionError(f"no failover: runs {before} -> {_runs(database_url)}; survivor's log: "
                                 f"{err[-4000:]}") from None
        replicas = [r[0] for r in query(database_url, "SELECT replica FROM payment_probe_slots ORDER BY slot_start")]
        assert replicas[-1] != leader
        assert survivor.poll() is None
        survivor.terminate()  # finishes the leg attempt running; no further leg starts (SPEC 8)
        survivor.communicate(timeout=60)
        # No slot ran twice: every run carries its slot, and one slot has at most one run id.
        twice = query(database_url, "SELECT split_part(run_id, '-', 1) FROM audit_log "
                                    "GROUP BY 1 HAVING count(DISTINCT run_id) > 1")
        assert twice == []
        # Every slot the survivor claimed was run once, with every leg's outcome, except the one the
        # SIGTERM cut short (its legs not begun have no outcome: they did not run, they did not fail).
        claimed = sorted(f"s{int(r[0])}" for r in query(database_url, "SELECT extract(epoch FROM slot_start) "
                                                        "FROM payment_probe_slots WHERE replica <> %s", (leader,)))
        runs = dict(query(database_url, "SELECT split_part(run_id, '-', 1), count(*) FROM audit_log GROUP BY 1"))
        assert len(claimed) >= 2, (claimed, sorted(runs.items()))
        assert all(runs.get(slot) == len(LEGS) for slot in claimed[:-1]), (claimed, sorted(runs.items()))
        assert runs.get(claimed[-1], 0) <= len(LEGS)
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=30)


def _leader_is(proc: subprocess.Popen[str], replica: str) -> bool:
    return replica.endswith(f"-{proc.pid}")  # replica names are "<hostname>-<pid>"


def test_sigterm_mid_run_finishes_the_reap_and_exits_0(runner_env: dict[str, str], sandbox: SandboxServer,
                                                       database_url: str) -> None:
    sandbox.faults.replace(["upgrade_no_flip"])
    proc = spawn("run", env={**runner_env, "PAYMENT_PROBE_UPGRADE_WAIT_SECONDS": "3"})
    try:
        wait_for(lambda: query(database_url, "SELECT count(*) FROM teams WHERE is_test_cohort")[0][0] > 0,
                 40, "a cohort team mid-leg", step=0.02)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert query(database_url, "SELECT count(*) FROM teams") == [(0,)]
    reasons = query(database_url, "SELECT reason FROM audit_log WHERE leg = 'upgrade_webhook_e2e'")
    assert ("tier_not_flipped",) in reasons


def test_sigkill_leaves_a_cohort_the_next_run_reaps(runner_env: dict[str, str], sandbox: SandboxServer,
                                                    database_url: str) -> None:
    real = str(uuid.uuid4())
    query(database_url, "INSERT INTO teams (id, name) VALUES (%s, 'payment-probe-cohort-lookalike')", (real,))
    sandbox.faults.replace(["upgrade_no_flip"])
    proc = spawn("run", env={**runner_env, "PAYMENT_PROBE_UPGRADE_WAIT_SECONDS": "30"})
    try:
        wait_for(lambda: query(database_url, "SELECT count(*) FROM teams WHERE is_test_cohort")[0][0] > 0,
                 40, "a cohort team mid-leg", step=0.02)
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert query(database_url, "SELECT count(*) FROM teams WHERE is_test_cohort") == [(1,)]
    time.sleep(1.2)  # older than the leg timeout below
    sandbox.faults.replace([])
    swept = cli("sweep", env={**runner_env, "PAYMENT_PROBE_LEG_TIMEOUT_SECONDS": "1"})
    assert swept.returncode == 0 and swept.stdout.strip() == "1"
    assert query(database_url, "SELECT id::text, name, is_test_cohort FROM teams") == [
        (real, "payment-probe-cohort-lookalike", False)]


def test_run_sweeps_before_the_legs(runner_env: dict[str, str], database_url: str) -> None:
    old = str(uuid.uuid4())
    fresh = str(uuid.uuid4())
    query(database_url, "INSERT INTO teams (id, name, is_test_cohort, created_at) VALUES "
                        "(%s, 'payment-probe-cohort-dead-00000000', true, now() - interval '1 hour'), "
                        "(%s, 'payment-probe-cohort-live-00000000', true, now())", (old, fresh))
    query(database_url, "INSERT INTO teams (id, name, is_test_cohort, created_at) VALUES "
                        "(gen_random_uuid(), 'customer-team', true, now() - interval '1 hour')")
    proc = cli("run", "--once", env=runner_env)
    assert proc.returncode == 0, proc.stderr
    names = sorted(r[0] for r in query(database_url, "SELECT name FROM teams"))
    assert names == ["customer-team", "payment-probe-cohort-live-00000000"]


# ---- the loop, in-process ------------------------------------------------------------------------

class ExplodingLegs(LegRunner):
    def __init__(self, inner: LegRunner, explode_on: set[int]) -> None:
        super().__init__(inner.config, inner.plugin)
        self.inner = inner
        self.calls = 0
        self.explode_on = explode_on

    def run(self, run: RunContext | str, slot_start: float | None = None, legs: Sequence[str] | None = None,
            stop: threading.Event | None = None) -> RunReport:
        self.calls += 1
        if self.calls in self.explode_on:
            raise RuntimeError("pytest blew up")
        return self.inner.run(run, slot_start, legs, stop)


def _loop(probe: Probe, sinks: list[object], extra_args: list[str] | None = None, **env: str) -> tuple[Runner, ProbeMetrics]:
    config = probe.config(PAYMENT_PROBE_INTERVAL_SECONDS="0.05", PAYMENT_PROBE_DATABASE_URL="", **env)
    metrics = ProbeMetrics(CollectorRegistry())
    from runner.signals.wiring import count_sink_error

    plugin = SignalsPlugin(sinks, on_sink_error=count_sink_error(metrics))  # type: ignore[arg-type]
    legs = LegRunner(config, plugin, extra_args, quiet=True)
    return Runner(config, metrics, legs), metrics


def test_a_crash_outside_the_legs_never_ends_the_loop(probe: Probe) -> None:
    memory = MemorySink()
    runner, metrics = _loop(probe, [memory])
    runner.legs = ExplodingLegs(runner.legs, {1})
    runner.run_forever(max_runs=2)
    assert runner.runs_done == 2 and metrics.registry.get_sample_value("instant_payment_probe_run_errors_total") == 1
    assert len(memory.flushed) == 2 and all(len(f) == len(LEGS) for f in memory.flushed)


def test_a_raising_sink_leaves_the_next_run_normal(probe: Probe) -> None:
    memory = MemorySink()
    runner, metrics = _loop(probe, [MemorySink("events", fail_with=ValueError("sink down")), memory])
    runner.run_forever(max_runs=2)
    assert [len(f) for f in memory.flushed] == [len(LEGS)] * 2
    # The failing sink was counted under its own name, every time it raised; the others not at all.
    # each record and each flush of it raised: 2 runs x (one record per leg + one flush)
    assert metrics.registry.get_sample_value("instant_payment_probe_sink_errors_total", {"sink": "events"}) == 2 * (len(LEGS) + 1)
    assert metrics.registry.get_sample_value("instant_payment_probe_sink_errors_total", {"sink": "audit"}) == 0


def test_a_pytest_usage_error_is_counted_and_the_loop_goes_on(probe: Probe) -> None:
    memory = MemorySink()
    runner, metrics = _loop(probe, [memory], ["--no-such-option"])
    runner.run_forever(max_runs=1)
    assert metrics.registry.get_sample_value("instant_payment_probe_run_errors_total") == 1
    assert metrics.registry.get_sample_value("instant_payment_probe_last_run_timestamp_seconds") == 0  # the switch still sees no run
    runner.legs.extra_args = []
    runner.run_forever(max_runs=2)
    assert memory.flushed[-1] and len(memory.flushed[-1]) == len(LEGS)


def test_a_leg_that_raises_leaves_the_next_run_normal(probe: Probe) -> None:
    memory = MemorySink()
    runner, _ = _loop(probe, [memory])
    probe.sandbox.faults.replace(["billing_html_200"])
    runner.run_forever(max_runs=1)
    probe.sandbox.faults.replace([])
    runner.run_forever(max_runs=2)
    first, second = memory.flushed
    assert {o.leg: o.reason for o in first}["billing_state"] == "not_json"
    assert {o.leg: o.result for o in second if o.leg not in ("upgrade_webhook_e2e", "webhook_replay")} == dict.fromkeys(
        ["checkout_reachable", "billing_state", "invoices_reachable", "webhook_security", "tls_certificate"], "pass")


def test_fixed_rate_slots_do_not_drift(probe: Probe) -> None:
    runner, _ = _loop(probe, [MemorySink()])
    starts: list[float] = []
    inner_run = runner.legs.run

    def timed(run: RunContext | str, slot_start: float | None = None, legs: Sequence[str] | None = None,
              stop: threading.Event | None = None) -> RunReport:
        starts.append(time.time())
        return inner_run(run, slot_start, legs, stop)

    runner.legs.run = timed  # type: ignore[method-assign]
    runner.config = dataclasses.replace(runner.config, interval_seconds=0.5)
    runner.run_forever(max_runs=4)
    # every start sits on a multiple of the interval (wall-clock slots), never one run per
    # "interval after the previous finished"
    offsets = [s % 0.5 for s in starts[1:]]
    assert all(o < 0.25 for o in offsets), offsets
    assert len({math.floor(s / 0.5) for s in starts}) == 4  # never two runs in one slot


def test_healthz_turns_503_when_the_loop_is_stuck(probe: Probe) -> None:
    runner, _ = _loop(probe, [MemorySink()])
    ok, detail = runner.health()
    assert ok and detail["status"] == "ok"
    # The bound: every leg's timeout, plus six 15 s database guards and two 5 s sink budgets.
    assert runner.stale_after_seconds() == len(LEGS) * runner.config.leg_timeout_seconds + 6 * 15 + 2 * 5
    runner.last_heartbeat -= runner.stale_after_seconds() - 1
    assert runner.health()[0]  # just inside the bound: still healthy
    runner.last_heartbeat -= 2
    ok, detail = runner.health()
    assert not ok and detail["status"] == "stuck"


def _table_rows(stdout: str, leg: str) -> list[list[str]]:
    """The demo's outcome table rows of ``leg`` (its second column)."""
    return [words for line in stdout.splitlines() if len(words := line.split()) > 1 and words[1] == leg]


def test_demo_probes_visibly_and_cleans_up() -> None:
    import tempfile

    before = set(Path(tempfile.gettempdir()).glob("payment-probe-demo-*"))
    proc = spawn("demo", "--interval", "1", "--fault", "webhook_accept_unsigned", "--metrics-port", str(free_port()),
                 env={})
    try:  # two full tables printed: wait on the output itself, not on the clock
        wait_for(lambda: len(_table_rows(proc.stdout_so_far(), "webhook_security")) >= 2, 120, "two runs' tables",
                 step=0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "running each leg on its interval (checkout_reachable 1s," in stdout  # --interval: every leg
    rows = _table_rows(stdout, "webhook_security")
    assert rows and all(row[:4] == ["FAIL", "webhook_security", "fail", "critical"] for row in rows)
    assert all(row[-1] == "unsigned_accepted" for row in rows)
    assert any("checkout_reachable" in line and "pass" in line for line in stdout.splitlines())
    assert "/metrics" in stdout
    assert set(Path(tempfile.gettempdir()).glob("payment-probe-demo-*")) == before  # cluster removed


def test_second_signal_exits_at_once(runner_env: dict[str, str], sandbox: SandboxServer, database_url: str) -> None:
    sandbox.faults.replace(["upgrade_no_flip"])
    proc = spawn("run", env={**runner_env, "PAYMENT_PROBE_UPGRADE_WAIT_SECONDS": "30",
                             "PAYMENT_PROBE_LEG_TIMEOUT_SECONDS": "40"})
    try:
        wait_for(lambda: query(database_url, "SELECT count(*) FROM teams WHERE is_test_cohort")[0][0] > 0,
                 40, "a cohort team mid-leg", step=0.02)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert proc.poll() is None  # the first one waits for the run
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert time.monotonic() - started < 5  # not the 30 s the leg would still have polled


HELP_NAMES = {
    (): ["run", "sandbox", "migrate", "sweep", "maintenance", "demo", "--version"],
    ("run",): ["--once", "--json"],
    ("sandbox",): ["--host", "--port", "--database-url", "--fault", "--webhook-secret", "--plan-id", "--api-token",
                   "--tls", "--cert-days", "--ca-out"],
    ("migrate",): ["audit table"],
    ("sweep",): ["cohort"],
    ("maintenance",): ["start", "end", "list"],
    ("maintenance", "start"): ["--for", "--reason", "--starts-in"],
    ("demo",): ["--fault", "--interval", "--metrics-port"],
}


@pytest.mark.parametrize("command", list(HELP_NAMES), ids=lambda c: " ".join(c) or "top")
def test_help_names_each_flag_and_subcommand(command: tuple[str, ...]) -> None:
    proc = cli(*command, "--help", env={})
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: payment-probe")
    for name in HELP_NAMES[command]:
        assert name in proc.stdout, name


def test_version() -> None:
    from synthetics import __version__

    proc = cli("--version", env={})
    assert (proc.returncode, proc.stdout.strip()) == (0, f"payment-probe {__version__}")
