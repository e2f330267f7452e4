"""Locations (SPEC 15): a label on every series and a field on every outcome; leadership per location,
several locations on one database, each running every slot."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import requests

from sandbox.server import SandboxServer
from synthetics.config import ConfigError, load_config

from conftest import LEGS, free_port, probe_env, query
from support.processes import cli, spawn, wait_for


def test_a_location_is_a_short_name() -> None:
    assert load_config({}).location == "local"
    assert load_config({"PAYMENT_PROBE_LOCATION": "eu-west-1"}).location == "eu-west-1"
    for bad in ("EU", "eu west", "x" * 33, "eu_1", "é"):
        try:
            load_config({"PAYMENT_PROBE_LOCATION": bad})
        except ConfigError as exc:
            assert exc.variable == "PAYMENT_PROBE_LOCATION"
        else:
            raise AssertionError(f"{bad!r} accepted")


def test_every_series_and_every_outcome_carries_the_location(sandbox: SandboxServer, database_url: str,
                                                             tmp_path: Path) -> None:
    port = free_port()
    env = probe_env(sandbox, database_url, tmp_path, PAYMENT_PROBE_LOCATION="eu-1",
                    PAYMENT_PROBE_METRICS_PORT=str(port), PAYMENT_PROBE_INTERVAL_SECONDS="300")
    once = cli("run", "--once", "--json", env=env, timeout=180)
    assert once.returncode == 0, once.stderr[-2000:]
    lines = [json.loads(x) for x in once.stderr.splitlines() if x.startswith("{") and '"leg"' in x]
    assert {line["location"] for line in lines} == {"eu-1"} and len(lines) == len(LEGS)
    assert query(database_url, "SELECT DISTINCT location FROM audit_log") == [("eu-1",)]
    runner = spawn("run", env=env)
    try:
        text = wait_for(lambda: _scrape(port), 60, "the metrics endpoint")
        page = requests.get(f"http://127.0.0.1:{port}/status.json", timeout=10).json()
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.communicate(timeout=60)
    ours = [line for line in text.splitlines() if line.startswith("instant_payment_probe_")]
    assert ours and all('location="eu-1"' in line for line in ours), [x for x in ours if "eu-1" not in x][:3]
    assert not any("location" in line for line in text.splitlines() if line.startswith("process_"))
    assert {row["leg"] for row in page["locations"]["eu-1"]} == set(LEGS)


def _scrape(port: int) -> str:
    try:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.RequestException:
        return ""


def test_two_locations_on_one_database_each_run_every_slot_once(sandbox: SandboxServer, database_url: str,
                                                                  tmp_path: Path) -> None:
    procs = []
    for location in ("eu-1", "eu-1", "us-1", "us-1"):  # two replicas in each location
        env = probe_env(sandbox, database_url, tmp_path / f"{location}-{len(procs)}", PAYMENT_PROBE_LOCATION=location,
                        PAYMENT_PROBE_METRICS_PORT=str(free_port()), PAYMENT_PROBE_INTERVAL_SECONDS="3")
        procs.append(spawn("run", env=env))
    def complete_runs(location: str) -> set[str]:
        """Slots whose run wrote every leg's row (a run SIGTERM cut short writes the legs it ran)."""
        try:
            rows = query(database_url, "SELECT split_part(run_id, '-', 1) FROM audit_log WHERE location = %s "
                                       "GROUP BY 1 HAVING count(*) = %s", (location, len(LEGS)))
        except Exception:  # the replicas have not made the table yet
            return set()
        return {r[0] for r in rows}

    try:
        wait_for(lambda: len(complete_runs("eu-1") & complete_runs("us-1")) >= 3, 120,
                 "three slots run in both locations")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.communicate(timeout=60)
    # Each location ran each of its slots once between its two replicas, with every leg; SIGTERM ends
    # a run after the leg it is in (SPEC 8), so each location may hold one shorter, last run.
    runs = query(database_url, "SELECT location, split_part(run_id, '-', 1), count(DISTINCT run_id), count(*) "
                               "FROM audit_log GROUP BY 1, 2")
    assert runs and all(distinct == 1 for _, _, distinct, _ in runs), runs
    for location in ("eu-1", "us-1"):
        short = [slot for loc, slot, _, rows in runs if loc == location and rows != len(LEGS)]
        assert len(short) <= 1, (location, runs)
        assert not short or short[0] == max(slot for loc, slot, _, _ in runs if loc == location), runs
    both = complete_runs("eu-1") & complete_runs("us-1")
    assert len(both) >= 3
