"""Grey failures never silence the prober (SPEC section 10): every wait ends by a deadline.

Drills through real processes, real sockets and a real Postgres; the bounds asserted are
generous ceilings that tell "bounded" from "stuck until the leg timeout or forever".
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from runner.signals.audit import AuditSink, row_of
from runner.signals.events import EventSink, SinkError
from runner.signals.outcome import Outcome
from runner.signals.pushgateway import bounded_push
from sandbox.server import SandboxServer
from synthetics import db
from synthetics.run import RunContext
from synthetics.secret import Secret

from conftest import LEGS, Probe, free_port, probe_env, query
from grey import FreezableProxy, Trickler
from receivers import EventCollector
from support.processes import cli, spawn, wait_for

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def test_a_trickled_status_line_is_a_timeout_at_the_http_timeout(probe: Probe) -> None:
    trickler = Trickler(HEAD, every=0.5)
    try:
        outcome = probe.run(legs="billing_state", PAYMENT_PROBE_BASE_URL=trickler.url,
                            PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS="2", PAYMENT_PROBE_LEG_TIMEOUT_SECONDS="60")
    finally:
        trickler.stop()
    billing = outcome["billing_state"]
    assert (billing.result, billing.reason) == ("fail", "timeout")
    # The HTTP deadline ended it (its own words), not pytest-timeout's 60 s leg timeout.
    assert billing.detail == "GET /api/v1/billing: status line and headers: not complete within 2s"
    # Latency is recorded up to where it stopped: the first byte had arrived.
    assert billing.latency_seconds is not None and billing.latency_seconds >= 1.5


def _timed(action: Any) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        action()
    except (SinkError, OSError) as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


def _outcome() -> Outcome:
    return Outcome(leg="billing_state", result="pass", severity="info", reason="ok", latency_seconds=0.1,
                   run_id="r-grey", timestamp=time.time())


@pytest.mark.parametrize("payload", [HEAD, b"HTTP/1.1 200 OK\r\nContent-Length: 9999\r\n\r\n" + b" " * 9999],
                         ids=["status-line", "body"])
def test_trickling_event_api_and_pushgateway_end_within_the_sink_budget(payload: bytes) -> None:
    trickler = Trickler(payload, every=0.25 if payload is HEAD else 0.01)
    try:
        sink = EventSink(trickler.url + "/v1/accounts/1/events", Secret("NRII-key"))
        events_took, events_error = _timed(lambda: sink.flush([_outcome()]))
        push_took, push_error = _timed(bounded_push(trickler.url + "/metrics/job/x", "PUT", 5.0, [], b"x 1\n"))
    finally:
        trickler.stop()
    assert isinstance(events_error, SinkError) and "timeout" in str(events_error)
    assert isinstance(push_error, OSError) and "timeout" in str(push_error)
    # A 5 s budget each (a trickle used to hold the run for 111 s); ceilings, not timings.
    assert events_took < 15 and push_took < 15


class _Redirector(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, location: str) -> None:
        self.location = location
        self.hits = 0
        super().__init__(("127.0.0.1", 0), _RedirectHandler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()


class _RedirectHandler(BaseHTTPRequestHandler):
    server: _Redirector

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _redirect(self) -> None:
        self.server.hits += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(307)
        self.send_header("Location", self.server.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = _redirect


def test_sinks_never_follow_a_redirect_and_the_key_stays_home() -> None:
    target = EventCollector()
    redirector = _Redirector(target.url)
    try:
        url = f"http://127.0.0.1:{redirector.server_address[1]}/v1/accounts/1/events"
        with pytest.raises(SinkError, match=r"HTTP 307 \(redirects are not followed\)"):
            EventSink(url, Secret("NRII-canary-key")).flush([_outcome()])
        with pytest.raises(OSError, match="HTTP 307"):
            bounded_push(url, "PUT", 5.0, [], b"x 1\n")()
    finally:
        redirector.shutdown()
        target.stop()
    assert redirector.hits == 2  # one POST, one PUT: no retry of a redirect either
    assert target.posts == []  # the redirect's target never saw the key


def _through(proxy: FreezableProxy, url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))


@pytest.fixture
def proxy(database_url: str) -> Any:
    parts = urlsplit(database_url)
    p = FreezableProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    yield p
    p.stop()


def test_a_database_frozen_before_run_once(proxy: FreezableProxy, sandbox: SandboxServer, database_url: str,
                                           tmp_path: Path) -> None:
    proxy.freeze()
    env = probe_env(sandbox, _through(proxy, database_url), tmp_path, PAYMENT_PROBE_LEG_TIMEOUT_SECONDS="60")
    started = time.monotonic()
    proc = cli("run", "--once", "--json", env=env, timeout=240)
    took = time.monotonic() - started
    outcomes = {o["leg"]: (o["result"], o["reason"]) for o in json.loads(proc.stdout)}
    assert outcomes.pop("upgrade_webhook_e2e") == ("degraded", "mint_failed")
    assert outcomes.pop("webhook_replay") == ("degraded", "mint_failed")
    assert outcomes == dict.fromkeys(outcomes, ("pass", "ok")) and len(outcomes) == len(LEGS) - 2
    assert proc.returncode == 0, proc.stderr
    print(f"run --once against a frozen database: {took:.1f}s")
    assert took < 120  # connect bounds (5 s each), never a hang
    proxy.thaw()
    spooled = (tmp_path / "spool" / "audit-audit_log.jsonl").read_text().splitlines()
    assert len(spooled) == len(LEGS)  # kept for the thaw, none lost


def _metric_total(port: int) -> float:
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.RequestException:
        return -1
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("instant_payment_probe_outcome_total{"))


def _audit_count(database_url: str) -> int:
    try:
        return int(query(database_url, "SELECT count(*) FROM audit_log")[0][0])
    except Exception:  # the runner has not created the table yet
        return 0


def test_a_database_that_freezes_under_a_running_runner(proxy: FreezableProxy, sandbox: SandboxServer,
                                                        database_url: str, tmp_path: Path) -> None:
    from conftest import free_port

    port = free_port()
    env = probe_env(sandbox, _through(proxy, database_url), tmp_path, PAYMENT_PROBE_INTERVAL_SECONDS="2",
                    PAYMENT_PROBE_METRICS_PORT=str(port), PAYMENT_PROBE_LEG_TIMEOUT_SECONDS="30")
    runner = spawn("run", env=env)
    try:
        wait_for(lambda: _audit_count(database_url) >= len(LEGS), 120, "the first run's audit rows")
        proxy.freeze()
        frozen_at = _metric_total(port)
        # HTTP-leg outcomes keep arriving during the freeze: two more runs' worth.
        wait_for(lambda: _metric_total(port) >= frozen_at + 2 * len(LEGS), 240, "runs during the freeze", step=0.5)
        proxy.thaw()
        # After the thaw the audit table holds every outcome the metrics counted, exactly once.
        def settled() -> bool:
            counted = _metric_total(port)
            rows, distinct = query(database_url, "SELECT count(*), count(DISTINCT id) FROM audit_log")[0]
            return rows == distinct and rows >= counted - len(LEGS) and rows > frozen_at + 2 * len(LEGS) - 1
        wait_for(settled, 240, "spooled rows to land after the thaw", step=0.5)
    finally:
        runner.terminate()
        runner.communicate(timeout=120)
    rows, distinct = query(database_url, "SELECT count(*), count(DISTINCT id) FROM audit_log")[0]
    assert rows == distinct
    degraded = query(database_url, "SELECT count(*) FROM audit_log WHERE leg = 'upgrade_webhook_e2e' "
                                   "AND reason = 'mint_failed'")[0][0]
    assert degraded >= 2  # the frozen runs: the upgrade leg degraded, not hung


# ---- permanent errors are configuration errors, not outages -----------------------------------

def _env(sandbox: SandboxServer, url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return probe_env(sandbox, url, tmp_path, **extra)


def test_an_audit_table_with_a_wrong_column_type_is_exit_2(sandbox: SandboxServer, database_url: str,
                                                           tmp_path: Path) -> None:
    query(database_url, "CREATE TABLE audit_log (id bigint PRIMARY KEY, created_at timestamptz, actor text, "
                        "action text, run_id text, leg text, result text, severity text, reason text, "
                        "latency_ms double precision, environment text, metadata jsonb)")
    proc = cli("run", "--once", env=_env(sandbox, database_url, tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "payment-probe: PAYMENT_PROBE_AUDIT_TABLE: table audit_log has columns of the wrong type: id is bigint"]


@pytest.mark.parametrize("table", ["user", "AuditLog", "probe_audit.outcomes"])
def test_reserved_mixed_case_and_schema_qualified_table_names_work(sandbox: SandboxServer, database_url: str,
                                                                   tmp_path: Path, table: str) -> None:
    query(database_url, "CREATE SCHEMA probe_audit")
    proc = cli("run", "--once", env=_env(sandbox, database_url, tmp_path, PAYMENT_PROBE_AUDIT_TABLE=table))
    assert proc.returncode == 0, proc.stderr
    quoted = ".".join(f'"{part}"' for part in table.split("."))
    assert query(database_url, f"SELECT count(*) FROM {quoted}") == [(len(LEGS),)]
    assert not (tmp_path / "spool").exists() or not any((tmp_path / "spool").iterdir())


def _role(database_url: str, grants: list[str]) -> str:
    import uuid

    name = f"probe_{uuid.uuid4().hex[:6]}"
    query(database_url, f"CREATE ROLE {name} LOGIN PASSWORD 'pw_{name}'")
    query(database_url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    query(database_url, "CREATE TABLE IF NOT EXISTS audit_log (id uuid PRIMARY KEY, created_at timestamptz "
                        "NOT NULL DEFAULT now(), actor text NOT NULL, action text NOT NULL, run_id text NOT NULL, "
                        "leg text NOT NULL, result text NOT NULL, severity text NOT NULL, reason text NOT NULL, "
                        "latency_ms double precision, environment text, metadata jsonb NOT NULL DEFAULT '{}', "
                        "location text)")
    for grant in ["GRANT SELECT, INSERT ON audit_log TO {r}", "GRANT SELECT, INSERT, UPDATE, DELETE ON teams TO {r}",
                  *grants]:
        query(database_url, grant.format(r=name))
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(netloc=f"{name}:pw_{name}@{parts.hostname}:{parts.port}"))


@pytest.mark.parametrize(("slots", "message"), [
    (None, "payment-probe: PAYMENT_PROBE_DATABASE_URL: table payment_probe_slots is missing (or lacks its location "
           "column) and the role cannot create it (InsufficientPrivilege: permission denied for schema public); run "
           "`payment-probe migrate` as its owner"),
    ("SELECT, INSERT", "payment-probe: PAYMENT_PROBE_DATABASE_URL: the database role lacks DELETE on table "
                       "payment_probe_slots"),
    ("old-table", "payment-probe: PAYMENT_PROBE_DATABASE_URL: table payment_probe_slots is missing (or lacks its "
                  "location column) and the role cannot create it (InsufficientPrivilege: must be owner of table "
                  "payment_probe_slots); run `payment-probe migrate` as its owner"),
], ids=["no-create-no-slots-table", "no-delete-on-slots", "slots-table-from-before-locations"])
def test_a_role_that_can_never_claim_a_slot_is_exit_2(sandbox: SandboxServer, database_url: str, tmp_path: Path,
                                                      slots: str | None, message: str) -> None:
    grants = []
    if slots == "old-table":  # as an earlier version made it: one row per slot, no location
        query(database_url, "CREATE TABLE payment_probe_slots (slot_start timestamptz PRIMARY KEY, replica text "
                            "NOT NULL, claimed_at timestamptz NOT NULL DEFAULT now())")
        grants.append("GRANT SELECT, INSERT, DELETE ON payment_probe_slots TO {r}")
    elif slots is not None:
        query(database_url, "CREATE TABLE payment_probe_slots (slot_start timestamptz NOT NULL, location text NOT NULL "
                            "DEFAULT 'local', replica text NOT NULL, claimed_at timestamptz NOT NULL DEFAULT now(), "
                            "PRIMARY KEY (slot_start, location))")
        grants.append(f"GRANT {slots} ON payment_probe_slots TO {{r}}")
    url = _role(database_url, grants)
    proc = cli("run", "--once", env=_env(sandbox, url, tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [message]


# ---- the spool: only on failure; poison rows never block the rest --------------------------------

def _rows(database_url: str) -> list[str]:
    return [r[0] for r in query(database_url, "SELECT reason FROM audit_log ORDER BY reason")]


def test_a_poison_row_goes_to_the_dead_letter_file_and_the_rest_land(database_url: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool" / "audit.jsonl"
    spool.parent.mkdir()
    good1, poison, good2 = (row_of(Outcome(leg="billing_state", result="pass", severity="info", reason=r,
                                           latency_seconds=0.1, run_id="r", timestamp=time.time()))
                            for r in ("a_first", "b_poison", "c_after"))
    poison["latency_ms"] = "not a number"  # the database rejects this one for good
    spool.write_text("".join(json.dumps(r) + "\n" for r in (good1, poison, good2)))
    errors: list[str] = []
    sink = AuditSink(Secret(database_url), "audit_log", spool, on_error=errors.append)
    from runner.audit_store import migrate

    migrate(Secret(database_url), "audit_log")
    new = Outcome(leg="billing_state", result="pass", severity="info", reason="d_new", latency_seconds=0.1,
                  run_id="r", timestamp=time.time())
    sink.flush([new])
    assert _rows(database_url) == ["a_first", "c_after", "d_new"]
    dead = [json.loads(line) for line in sink.dead_letter.path.read_text().splitlines()]
    assert [d["reason"] for d in dead] == ["b_poison"] and "InvalidTextRepresentation" in dead[0]["rejected_because"]
    assert not spool.exists() and errors == ["audit"]


def test_an_unusable_spool_directory_loses_nothing_while_the_database_is_healthy(database_url: str,
                                                                                 tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spool directory should be")
    errors: list[str] = []
    sink = AuditSink(Secret(database_url), "audit_log", blocker / "audit.jsonl", on_error=errors.append)
    sink.flush([Outcome(leg="billing_state", result="pass", severity="info", reason=f"r{i}", latency_seconds=0.1,
                        run_id="r", timestamp=time.time()) for i in range(3)])
    assert _rows(database_url) == ["r0", "r1", "r2"] and errors == []


def test_rows_dropped_at_the_spool_bound_are_counted_and_logged(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    dropped: list[int] = []
    sink = AuditSink(Secret("postgresql://postgres@127.0.0.1:1/x"), "audit_log", tmp_path / "s.jsonl",
                     on_dropped=dropped.append, max_spool_rows=2)
    with caplog.at_level("ERROR", logger="payment_probe.audit"):
        for i in range(4):
            sink.flush([Outcome(leg="billing_state", result="pass", severity="info", reason=f"r{i}",
                                latency_seconds=None, run_id="r", timestamp=time.time())])
    assert dropped == [1, 1]
    assert len([r for r in caplog.records if "dropped the 1 oldest" in r.getMessage()]) == 2


# ---- the metrics endpoint under an idle-connection flood ----------------------------------------

def _proc_status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Threads", "VmRSS"):
            fields[key] = int(value.split()[0])
    return fields


def test_3000_idle_connections_leave_threads_bounded_and_metrics_answering(tmp_path: Path) -> None:
    import socket

    from conftest import free_port

    port = free_port()
    runner = spawn("run", env={"PAYMENT_PROBE_METRICS_PORT": str(port), "PAYMENT_PROBE_METRICS_HOST": "127.0.0.1"})
    idle: list[socket.socket] = []
    try:
        wait_for(lambda: _metric_total(port) == 0 or "enabled" in _scrape(port), 60, "the metrics endpoint")
        before = _proc_status(runner.pid)
        for _ in range(3000):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        during = _proc_status(runner.pid)
        text = _scrape(port)  # answered while 3,000 connections sit idle
        assert "instant_payment_probe_enabled{location=\"local\"} 0.0" in text
        print(f"threads {before['Threads']} -> {during['Threads']}, RSS {before['VmRSS']} -> {during['VmRSS']} kB")
        assert during["Threads"] <= before["Threads"] + 8  # a thread per connection would be 3,000 more
        assert during["VmRSS"] - before["VmRSS"] < 64 * 1024
        # Idle connections are closed by the server after its idle timeout, not kept forever.
        idle[0].settimeout(60)
        assert idle[0].recv(1) == b""
    finally:
        for sock in idle:
            sock.close()
        runner.terminate()
        _, err = runner.communicate(timeout=60)
    assert "Traceback" not in err


def _scrape(port: int) -> str:
    try:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except requests.RequestException:
        return ""


def test_dead_letter_rows_past_the_bound_are_counted_and_logged_as_a_count(
        database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from runner.audit_store import migrate

    migrate(Secret(database_url), "audit_log")
    dropped: list[int] = []
    sink = AuditSink(Secret(database_url), "audit_log", tmp_path / "s.jsonl", on_dropped=dropped.append,
                     max_spool_rows=3)
    poison = [row_of(Outcome(leg="billing_state", result="pass", severity="info", reason=f"p{i}",
                             latency_seconds=0.1, run_id="r", timestamp=time.time())) for i in range(5)]
    for row in poison:
        row["latency_ms"] = "not a number"
    sink.spool.path.write_text("".join(json.dumps(r) + "\n" for r in poison))  # as a bigger bound left it
    with caplog.at_level("ERROR", logger="payment_probe.audit"):
        sink.flush([])
    kept = [json.loads(line)["reason"] for line in sink.dead_letter.path.read_text().splitlines()]
    assert kept == ["p2", "p3", "p4"] and dropped == [2]
    messages = [r.getMessage() for r in caplog.records]
    rejected = [m for m in messages if "rejected 5 row(s) for good" in m]
    assert len(rejected) == 1 and f"(ids {poison[0]['id']} … {poison[4]['id']})" in rejected[0]
    assert poison[2]["id"] not in rejected[0]  # a count and the ends, not a list of every id
    assert any("dead-letter file" in m and "dropped the 2 oldest" in m for m in messages)


def _connect_error(url: Secret) -> str:
    try:
        db.connect(url).close()
    except Exception as exc:
        return type(exc).__name__
    return "connected"


def test_a_runs_database_outage_is_its_own() -> None:
    """Issue 28: the outage was a module global (db.OUTAGE) entered, reset and read from four modules,
    so any thread of the process (a status page's) was held to a run's finding. Now each run has its
    own (RunContext.outage), current only where the run runs; the next run tries afresh."""
    refused = Secret(f"postgresql://postgres@127.0.0.1:{free_port()}/none")  # nothing listens there
    run = RunContext("r1")
    with db.one_detection(run.outage) as outage:
        assert outage is run.outage and db.current_outage() is run.outage
        assert _connect_error(refused) == "OperationalError"
        assert run.outage.out
        assert _connect_error(refused) == "DatabaseOut"  # found out once: the run's next step waits no more
        seen: list[str] = []
        other = threading.Thread(target=lambda: seen.append(_connect_error(refused)))
        other.start()
        other.join(60)
        assert seen == ["OperationalError"]  # a thread outside the run makes its own detection
        with db.one_detection(db.Outage()) as inner:  # the legs' session inside the slot: the slot's
            assert inner is run.outage
    assert db.current_outage() is None
    assert [_connect_error(refused), _connect_error(refused)] == ["OperationalError"] * 2  # no run: each tries
    with db.one_detection() as fresh:
        assert not fresh.out and _connect_error(refused) == "OperationalError"
