"""Maintenance windows (SPEC section 12): the CLI, every bad input, and outcomes that carry the window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.server import SandboxServer

from conftest import probe_env, query
from receivers import EventCollector
from support.processes import cli


@pytest.fixture
def env(sandbox: SandboxServer, database_url: str, tmp_path: Path) -> dict[str, str]:
    return probe_env(sandbox, database_url, tmp_path)


def test_start_list_end(env: dict[str, str], database_url: str) -> None:
    started = cli("maintenance", "start", "--for", "30m", "--reason", "deploying billing-api v42", env=env)
    assert started.returncode == 0, started.stderr
    window = json.loads(started.stdout)
    assert window["reason"] == "deploying billing-api v42"
    (length,) = query(database_url, "SELECT extract(epoch FROM ends_at - starts_at) FROM payment_probe_maintenance")[0:1]
    assert float(length[0]) == 1800
    upcoming = cli("maintenance", "start", "--for", "1h", "--starts-in", "2h", "--reason", "db upgrade", env=env)
    assert upcoming.returncode == 0, upcoming.stderr
    listed = [json.loads(line) for line in cli("maintenance", "list", env=env).stdout.splitlines()]
    assert [w["reason"] for w in listed] == ["deploying billing-api v42", "db upgrade"]  # open, then upcoming
    ended = cli("maintenance", "end", env=env)
    assert ended.returncode == 0
    assert [(w["reason"], w["action"]) for w in map(json.loads, ended.stdout.splitlines())] == [
        ("deploying billing-api v42", "ended")]
    assert [json.loads(line)["reason"] for line in cli("maintenance", "list", env=env).stdout.splitlines()] == [
        "db upgrade"]  # the upcoming one is not touched while one is open
    cancelled = cli("maintenance", "end", env=env)  # none open: the next upcoming one is cancelled
    assert [(w["reason"], w["action"]) for w in map(json.loads, cancelled.stdout.splitlines())] == [
        ("db upgrade", "cancelled")]
    again = cli("maintenance", "end", env=env)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        "payment-probe: maintenance end: no maintenance window is open or upcoming"]


@pytest.mark.parametrize(("args", "line"), [
    (["--for", "25h", "--reason", "x"], "payment-probe: --for: a window lasts at most 24h"),
    (["--for", "soon", "--reason", "x"], "payment-probe: --for: expected a duration like 30m, 2h or 1h30m, got 'soon'"),
    (["--for", "0m", "--reason", "x"], "payment-probe: --for: a window must last more than 0 seconds"),
    (["--for", "30m", "--reason", "  "], "payment-probe: --reason: say why (it is shown on the status page and in every outcome)"),
    (["--for", "30m", "--reason", "r" * 201], "payment-probe: --reason: at most 200 characters, got 201"),
], ids=["over-24h", "not-a-duration", "zero", "blank-reason", "long-reason"])
def test_bad_input_is_exit_2_with_one_line(env: dict[str, str], database_url: str, args: list[str], line: str) -> None:
    proc = cli("maintenance", "start", *args, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [line]
    assert query(database_url, "SELECT to_regclass('payment_probe_maintenance')") == [(None,)]  # nothing opened


def test_for_is_required_and_the_database_too(env: dict[str, str]) -> None:
    missing = cli("maintenance", "start", "--reason", "x", env=env)
    assert missing.returncode == 2 and "--for" in missing.stderr.strip().splitlines()[-1]
    no_db = cli("maintenance", "list", env={k: v for k, v in env.items() if k != "PAYMENT_PROBE_DATABASE_URL"})
    assert no_db.returncode == 2
    assert no_db.stderr.strip().splitlines() == [
        "payment-probe: PAYMENT_PROBE_DATABASE_URL: expected a postgresql:// URL (windows live in the database)"]


def test_outcomes_during_a_window_carry_maintenance_true(env: dict[str, str], database_url: str) -> None:
    collector = EventCollector()
    try:
        env = {**env, "PAYMENT_PROBE_EVENTS_URL": collector.url}
        before = cli("run", "--once", env=env)
        assert before.returncode == 0, before.stderr
        assert cli("maintenance", "start", "--for", "10m", "--reason", "deploy", env=env).returncode == 0
        during = cli("run", "--once", env=env)
        assert during.returncode == 0, during.stderr
    finally:
        collector.stop()
    rows = query(database_url, "SELECT run_id, metadata->>'maintenance' FROM audit_log ORDER BY created_at")
    by_run: dict[str, set[str | None]] = {}
    for run_id, flag in rows:
        by_run.setdefault(run_id, set()).add(flag)
    assert list(by_run.values()) == [{None}, {"true"}]  # the run before: no flag; during: every row
    first, second = collector.posts
    assert all("maintenance" not in e for e in first["events"])
    assert {e["maintenance"] for e in second["events"]} == {"true"}
    lines = [json.loads(x) for x in during.stderr.splitlines() if '"payment_probe.outcome"' in x]
    assert lines and all(line["maintenance"] is True for line in lines)
    assert all(json.loads(x)["maintenance"] is False for x in before.stderr.splitlines()
               if '"payment_probe.outcome"' in x)
