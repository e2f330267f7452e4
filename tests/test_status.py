"""The status page (SPEC section 13): facts from the audit table, checked against SQL of the test's
own on the raw rows; stale and database-down states; a real browser; no secret anywhere on it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from runner.audit_store import migrate
from runner.signals.outcome import Outcome
from runner.status import StatusSource
from runner.status_page import render
from sandbox.server import SandboxServer
from synthetics.registry import LEGS
from synthetics.secret import Secret

from conftest import LEGS as CORE_LEGS
from conftest import free_port, probe_env, query
from support.processes import spawn, wait_for

INCIDENT_AGO = 2  # days: billing_state fails 4 runs in a row, 503
GAP_DAYS = (40, 41, 42)  # days ago with no data at all (the prober was down)

SEED = """
INSERT INTO audit_log (id, created_at, actor, action, run_id, leg, result, severity, reason, latency_ms, metadata)
SELECT gen_random_uuid(), ts, 'system:payment_probe', 'payment_probe.leg_outcome', 'seed-' || i, leg,
       CASE WHEN leg = 'billing_state' AND i BETWEEN %(inc)s AND %(inc)s + 3 THEN 'fail'
            WHEN leg = 'invoices_reachable' AND i %% 50 = 7 THEN 'degraded'
            WHEN leg = 'checkout_reachable' AND i %% 1000 = 11 THEN 'fail'
            ELSE 'pass' END,
       'info',
       CASE WHEN leg = 'billing_state' AND i BETWEEN %(inc)s AND %(inc)s + 3 THEN 'http_status:503'
            WHEN leg = 'checkout_reachable' AND i %% 1000 = 11 THEN 'timeout' ELSE 'ok' END,
       10 + (i %% 40) * (1 + length(leg) %% 3), '{}'
FROM generate_series(1, 90 * 288 - 1) AS i, unnest(%(legs)s::text[]) AS leg,
     LATERAL (SELECT now() - make_interval(mins => 5 * i) AS ts) t
WHERE (now() AT TIME ZONE 'UTC')::date - (ts AT TIME ZONE 'UTC')::date <> ALL(%(gap)s)
"""


@pytest.fixture
def seeded(database_url: str) -> str:
    migrate(Secret(database_url), "audit_log")  # the table, its indexes and the hourly roll-up
    incident_index = INCIDENT_AGO * 288
    query(database_url, SEED, {"inc": incident_index, "legs": list(LEGS), "gap": list(GAP_DAYS)})  # type: ignore[arg-type]
    query(database_url, "CREATE TABLE IF NOT EXISTS payment_probe_maintenance (id bigserial PRIMARY KEY, "
                        "starts_at timestamptz NOT NULL, ends_at timestamptz NOT NULL, reason text NOT NULL, "
                        "opened_by text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())")
    query(database_url, "INSERT INTO payment_probe_maintenance (starts_at, ends_at, reason, opened_by) VALUES "
                        "(now() - interval '5 minutes', now() + interval '25 minutes', 'deploying billing v42', 't'),"
                        "(now() + interval '1 day', now() + interval '1 day 1 hour', 'db upgrade', 't')")
    return database_url


def _independent(database_url: str) -> dict[str, Any]:
    """The facts, computed from the raw rows (not the roll-up the page reads)."""
    hour = "date_trunc('hour', created_at AT TIME ZONE 'UTC')"
    now_hour = "date_trunc('hour', now() AT TIME ZONE 'UTC')"
    up = "count(*) FILTER (WHERE result <> 'fail' AND {w})::float / nullif(count(*) FILTER (WHERE {w}), 0) * 100"
    rows = query(database_url, f"""
        SELECT leg, {up.format(w=f"{hour} > {now_hour} - interval '24 hours'")},
                    {up.format(w=f"{hour} > {now_hour} - interval '7 days'")},
                    {up.format(w=f"{hour} > {now_hour} - interval '30 days'")}
        FROM audit_log GROUP BY leg""")
    uptime = {leg: [round(x, 3) if x is not None else None for x in vals] for leg, *vals in rows}
    days = {}
    for leg, day, worst in query(database_url, """
        SELECT leg, (created_at AT TIME ZONE 'UTC')::date,
               CASE WHEN bool_or(result = 'fail') THEN 'fail' WHEN bool_or(result = 'degraded') THEN 'degraded'
                    ELSE 'pass' END
        FROM audit_log WHERE created_at > now() - interval '91 days' GROUP BY 1, 2"""):
        days[(leg, day.isoformat())] = worst
    return {"uptime": uptime, "days": days}


def test_status_json_matches_the_raw_rows_field_by_field(seeded: str) -> None:
    snapshot = StatusSource(Secret(seeded), "audit_log", 300).snapshot()
    truth = _independent(seeded)
    legs = {leg["leg"]: leg for leg in snapshot["legs"]}
    assert list(legs) == list(LEGS)
    for name, leg in legs.items():
        assert [leg["uptime"][k] for k in ("24h", "7d", "30d")] == pytest.approx(truth["uptime"][name], abs=0.001)
        assert len(leg["days"]) == 90
        for day in leg["days"]:
            assert day["result"] == truth["days"].get((name, day["day"]), "no_data"), (name, day)
        assert leg["result"] == "pass" and leg["reason"] == "ok"
    today = datetime.now(UTC).date()
    for ago in GAP_DAYS:  # days without data are "no data", never up
        gap_day = (today - timedelta(days=ago)).isoformat()
        assert all(next(d for d in leg["days"] if d["day"] == gap_day)["result"] == "no_data" for leg in legs.values())
    assert legs["invoices_reachable"]["uptime"]["30d"] == 100.0  # degraded counts as up
    assert legs["billing_state"]["uptime"]["7d"] < 100.0
    (p50, p95), = query(seeded, "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), "
                                "percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) FROM audit_log "
                                "WHERE leg = 'webhook_security' AND created_at > now() - interval '24 hours'")
    assert legs["webhook_security"]["latency_ms"] == {"p50": round(p50, 3), "p95": round(p95, 3)}
    # The billing incident: 4 consecutive fails, ended by the next pass.
    incident = next(i for i in snapshot["incidents"] if i["leg"] == "billing_state")
    (started, ended), = query(seeded, """
        SELECT min(created_at), (SELECT min(created_at) FROM audit_log n WHERE n.leg = 'billing_state'
                                 AND n.created_at > max(f.created_at))
        FROM audit_log f WHERE leg = 'billing_state' AND result = 'fail'""")
    assert (incident["started_at"], incident["ended_at"], incident["runs"], incident["reason"], incident["ongoing"]) == (
        started.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        ended.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"), 4, "http_status:503", False)
    assert [w["reason"] for w in snapshot["maintenance"]] == ["deploying billing v42", "db upgrade"]
    assert [w["open"] for w in snapshot["maintenance"]] == [True, False]
    assert snapshot["stale"] is False and snapshot["history_available"] is True


def test_a_stopped_prober_is_shown_stale_not_current(database_url: str) -> None:
    migrate(Secret(database_url), "audit_log")
    query(database_url, "INSERT INTO audit_log (id, created_at, actor, action, run_id, leg, result, severity, reason) "
                        "SELECT gen_random_uuid(), now() - interval '16 minutes', 'a', 'b', 'r', leg, 'pass', 'info', 'ok' "
                        "FROM unnest(%s::text[]) leg", (list(LEGS),))
    snapshot = StatusSource(Secret(database_url), "audit_log", 300).snapshot()
    assert snapshot["stale"] is True and 959 <= snapshot["latest_run_age_seconds"] <= 1200
    assert "STALE" in render(snapshot) and "last known, not current" in render(snapshot)
    fresh = StatusSource(Secret(database_url), "audit_log", 600).snapshot()  # 3 intervals = 30 min
    assert fresh["stale"] is False


def test_each_leg_is_judged_against_its_own_interval_and_left_out_legs_are_not_shown(database_url: str) -> None:
    """16 minutes without a run is stale for a 60 s leg (3 intervals: 3 min) but not for a 900 s one (45 min);
    a leg the deployment does not run (PAYMENT_PROBE_LEGS) is not on the page (SPEC 13, 18)."""
    migrate(Secret(database_url), "audit_log")
    query(database_url, "INSERT INTO audit_log (id, created_at, actor, action, run_id, leg, result, severity, reason) "
                        "SELECT gen_random_uuid(), now() - interval '16 minutes', 'a', 'b', 'r', leg, 'pass', 'info', 'ok' "
                        "FROM unnest(%s::text[]) leg", (list(LEGS),))
    snapshot = StatusSource(Secret(database_url), "audit_log",
                            {"checkout_reachable": 60.0, "tls_certificate": 900.0}).snapshot()
    legs = {leg["leg"]: leg for leg in snapshot["legs"]}
    assert list(legs) == ["checkout_reachable", "tls_certificate"]
    assert (legs["checkout_reachable"]["interval_seconds"], legs["checkout_reachable"]["stale"]) == (60.0, True)
    assert (legs["tls_certificate"]["interval_seconds"], legs["tls_certificate"]["stale"]) == (900.0, False)
    page = render(snapshot)
    assert "billing_state" not in page and "webhook_replay" not in page
    assert "(every 15 min)" in page and "(every 60 s) — stale" in page


def test_database_down_falls_back_to_the_runners_memory() -> None:
    recent = [Outcome(leg="billing_state", result="fail", severity="error", reason="http_status:500",
                      latency_seconds=0.01, run_id="r", timestamp=time.time())]
    source = StatusSource(Secret("postgresql://postgres@127.0.0.1:1/nowhere"), "audit_log", 300, recent=lambda: recent)
    snapshot = source.snapshot()
    assert snapshot["history_available"] is False
    assert snapshot["note"].startswith("history unavailable: the database is unreachable")
    billing = next(leg for leg in snapshot["legs"] if leg["leg"] == "billing_state")
    assert (billing["result"], billing["reason"]) == ("fail", "http_status:500")
    page = render(snapshot)
    assert "history unavailable" in page and "✖ fail" in page


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        import os

        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (Debian package chromium)")
        pytest.skip("chromium not installed: apt-get install chromium")
    return found


def _browser(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1200,1700",
                           *args, url], capture_output=True, text=True, timeout=120)


CANARIES = {"PAYMENT_PROBE_API_TOKEN": "tok_STATUSCANARY_1", "RAZORPAY_TEST_WEBHOOK_SECRET": "whsec_STATUSCANARY_2",
            "NEW_RELIC_INSERT_KEY": "NRII-STATUSCANARY-3", "NEW_RELIC_ACCOUNT_ID": "1234567"}


def test_a_real_runner_serves_the_page_to_a_browser_and_without_javascript(
    seeded: str, sandbox: SandboxServer, pg_server: str, tmp_path: Path
) -> None:
    password = "pw_STATUSCANARY_4"
    role = f"status_{int(time.time() * 1000) % 10_000_000}"
    query(pg_server, f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
    parts = urlsplit(seeded)
    url = urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}"))
    sandbox.settings.webhook_secret = CANARIES["RAZORPAY_TEST_WEBHOOK_SECRET"]
    sandbox.settings.api_token = CANARIES["PAYMENT_PROBE_API_TOKEN"]
    sandbox.faults.replace(["billing_500"])
    port = free_port()
    env = probe_env(sandbox, url, tmp_path, PAYMENT_PROBE_INTERVAL_SECONDS="2", PAYMENT_PROBE_METRICS_PORT=str(port),
                    PAYMENT_PROBE_EVENTS_URL="http://127.0.0.1:9/v1/accounts/1234567/events", **CANARIES)
    runner = spawn("run", env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        def billing_failing() -> dict[str, Any] | None:
            try:
                data = requests.get(f"{base}/status.json", timeout=10).json()
            except (requests.RequestException, ValueError):
                return None
            billing = next(leg for leg in data["legs"] if leg["leg"] == "billing_state")
            return data if billing["result"] == "fail" else None
        data = wait_for(billing_failing, 120, "the runner's failing run on the page", step=0.5)
        html = requests.get(f"{base}/status", timeout=10).text  # no JavaScript involved
        dom = _browser(f"{base}/status", tmp_path, "--dump-dom")
        shot = tmp_path / "status.png"
        _browser(f"{base}/status", tmp_path, f"--screenshot={shot}")
        body = requests.get(f"{base}/status.json", timeout=10).text
    finally:
        runner.terminate()
        runner.communicate(timeout=60)
    assert data["history_available"] is True and data["stale"] is False
    for page in (html, dom.stdout):
        for leg in CORE_LEGS:  # the legs the runner runs (the test environment's)
            assert f'id="leg-{leg}"' in page, leg
        assert 'id="leg-billing_state" data-result="fail"' in page
        assert "http_status:500" in page and "✖ fail" in page
        assert "MAINTENANCE" in page and "deploying billing v42" in page
        assert "<script" not in page and "http://" not in page.replace(f"{base}/status.json", "")
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for blob in (html, dom.stdout, body):
        assert "STATUSCANARY" not in blob and password not in blob and role not in blob
    assert json.loads(body)["legs"][1]["leg"] == "billing_state"


def _outcome_row(database_url: str, leg: str, result: str, ago_minutes: int, environment: str | None) -> None:
    query(database_url, "INSERT INTO audit_log (id, created_at, actor, action, run_id, leg, result, severity, reason, "
                        "latency_ms, environment) VALUES (gen_random_uuid(), now() - make_interval(mins => %s), 'a', "
                        "'b', 'r', %s, %s, 'info', %s, 5, %s)",
          (ago_minutes, leg, result, "ok" if result == "pass" else "http_status:500", environment))


def test_the_page_shows_its_own_environment_only(database_url: str) -> None:
    migrate(Secret(database_url), "audit_log")
    for ago in (30, 25, 20):
        _outcome_row(database_url, "billing_state", "pass", ago, "prod")
    _outcome_row(database_url, "billing_state", "fail", 2, "laptop")  # a laptop run writing to the same table
    _outcome_row(database_url, "billing_state", "fail", 1, None)
    snapshot = StatusSource(Secret(database_url), "audit_log", 300, environment="prod").snapshot()
    billing = next(leg for leg in snapshot["legs"] if leg["leg"] == "billing_state")
    assert (billing["result"], billing["reason"]) == ("pass", "ok")
    assert billing["uptime"]["24h"] == 100.0 and snapshot["incidents"] == []
    assert 1190 <= snapshot["latest_run_age_seconds"] <= 1500  # the laptop's rows do not refresh "latest run"
    laptop = StatusSource(Secret(database_url), "audit_log", 300, environment="laptop").snapshot()
    assert [i["leg"] for i in laptop["incidents"]] == ["billing_state"]
    assert next(leg for leg in laptop["legs"] if leg["leg"] == "billing_state")["uptime"]["24h"] == 0.0


def test_a_zone_less_created_at_is_read_as_utc(database_url: str) -> None:
    query(database_url, "CREATE TABLE audit_log (id uuid PRIMARY KEY, created_at timestamp NOT NULL "
                        "DEFAULT (now() AT TIME ZONE 'UTC'), actor text, action text, run_id text, leg text, "
                        "result text, severity text, reason text, latency_ms double precision, environment text, "
                        "metadata jsonb DEFAULT '{}')")
    migrate(Secret(database_url), "audit_log")
    query(database_url, "INSERT INTO audit_log (id, created_at, actor, action, run_id, leg, result, severity, reason) "
                        "VALUES (gen_random_uuid(), (now() AT TIME ZONE 'UTC') - interval '10 minutes', 'a', 'b', "
                        "'r', 'billing_state', 'fail', 'error', 'http_status:500')")
    snapshot = StatusSource(Secret(database_url), "audit_log", 300).snapshot()
    assert snapshot["history_available"] is True, snapshot["note"]
    assert 590 <= snapshot["latest_run_age_seconds"] <= 900
    assert snapshot["incidents"][0]["ongoing"] is True and "Z" in snapshot["incidents"][0]["started_at"]
    assert "history unavailable" not in render(snapshot)


def test_an_empty_history_says_so_in_words(database_url: str) -> None:
    migrate(Secret(database_url), "audit_log")
    page = render(StatusSource(Secret(database_url), "audit_log", 300).snapshot())
    assert "No data yet: no run has been recorded" in page and "never ago" not in page


def _row(database_url: str, leg: str, result: str, severity: str, reason: str, detail: str, ago_minutes: int) -> None:
    query(database_url, "INSERT INTO audit_log (id, created_at, actor, action, run_id, leg, result, severity, reason, "
                        "latency_ms, metadata) VALUES (gen_random_uuid(), now() - make_interval(mins => %s), "
                        "'system:payment_probe', 'payment_probe.leg_outcome', 'r', %s, %s, %s, %s, 5, "
                        "jsonb_build_object('detail', %s::text))",
          (ago_minutes, leg, result, severity, reason, detail))


def test_the_page_leads_with_what_is_broken(database_url: str) -> None:
    """SPEC 20: the banner says the worst state and how many legs are in it; critical and failing legs
    first, each with its severity, the attempt's one-line detail and a runbook link; the page refreshes
    itself; an hour of data is never shown as a 30-day figure."""
    migrate(Secret(database_url), "audit_log")
    for leg in LEGS:
        _row(database_url, leg, "pass", "info", "ok", "", 40)
    _row(database_url, "webhook_security", "fail", "critical", "unsigned_accepted",
         "HTTP 200: webhook without a valid signature accepted", 1)
    _row(database_url, "billing_state", "fail", "error", "http_status:503", "HTTP 503 from GET /api/v1/billing", 1)
    _row(database_url, "invoices_reachable", "degraded", "warning", "http_status:429", "rate limited", 1)
    for leg in ("checkout_reachable", "upgrade_webhook_e2e", "tls_certificate", "webhook_replay"):
        _row(database_url, leg, "pass", "info", "ok", "", 1)
    page = render(StatusSource(Secret(database_url), "audit_log", 300).snapshot())
    assert '<meta http-equiv=refresh content="30">' in page
    banner = page[page.index("id=summary"):page.index("</div>", page.index("id=summary"))]
    assert 'data-state="critical"' in banner and f"CRITICAL — 1 critical, 1 failing, 1 degraded, {len(LEGS) - 3} passing" in banner
    assert page.index("id=summary") < page.index("<h2>Legs</h2>")  # the banner comes first
    order = [page.index(f'id="leg-{leg}"') for leg in ("webhook_security", "billing_state", "invoices_reachable",
                                                        "checkout_reachable")]
    assert order == sorted(order)
    security = page[order[0]:order[1]]
    assert 'class="severity critical">critical<' in security
    assert ("webhook_security fail (critical): unsigned_accepted — HTTP 200: webhook without a valid signature "
            "accepted") in security
    assert "docs/runbooks/PaymentProbeWebhookSecurityFailing.md" in security
    billing = page[order[1]:order[2]]
    assert "docs/runbooks/PaymentProbeLegFailing.md" in billing and "billing_state fail (error): http_status:503" in billing
    assert "runbook" not in page[order[3]:page.index("</tbody>")]  # no runbook link on a passing leg
    assert "(every 5 min)" in security
    # 40 minutes of data: each period says so instead of a bare 30-day percentage.
    assert "(1 h of data)" in billing and billing.count("of data") == 3


def test_root_redirects_to_the_status_page() -> None:
    from prometheus_client import CollectorRegistry

    from runner.http_server import ProbeHTTPServer

    server = ProbeHTTPServer("127.0.0.1", 0, CollectorRegistry(), lambda: (True, {}),
                             extra_routes={"/status": lambda: (200, b"<html>status</html>", "text/html")})
    server.start()
    try:
        answer = requests.get(f"http://127.0.0.1:{server.port}/", timeout=5, allow_redirects=False)
        assert (answer.status_code, answer.headers["Location"]) == (302, "/status")
        assert requests.get(f"http://127.0.0.1:{server.port}/", timeout=5).text == "<html>status</html>"
    finally:
        server.stop()
