"""The four signals of each outcome, read back from the real things: registry, Postgres, HTTP, stderr."""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from runner.audit_store import AuditSchemaError, migrate
from runner.embedded_pg import EmbeddedPostgres
from runner.legrun import LegRunner, RunReport
from runner.signals.audit import ACTION, ACTOR, AuditSink
from runner.signals.controller import SignalsPlugin
from runner.signals.events import EventSink, endpoint_for
from runner.signals.logsink import LogSink
from runner.signals.metrics import LocationView, MetricsSink, ProbeMetrics, latency_buckets
from runner.signals.outcome import Outcome
from runner.signals.sink import MemorySink
from runner.signals.wiring import build_sinks, count_sink_error
from sandbox.server import SandboxSettings, ensure_teams_table, start
from synthetics.config import ProbeConfig, load_config
from synthetics.registry import RESULTS
from synthetics.secret import Secret

from conftest import LEGS, PLAN_ID, WEBHOOK_SECRET, Probe, query
from receivers import EventCollector


@pytest.fixture
def collector() -> Iterator[EventCollector]:
    server = EventCollector()
    yield server
    server.stop()


class Wired:
    """A runner's worth of real sinks around one registry, for several runs."""

    def __init__(self, config: ProbeConfig) -> None:
        self.config = config
        self.registry = CollectorRegistry()
        self.metrics = ProbeMetrics(self.registry, config.leg_timeout_seconds)
        self.metrics.prime()
        self.log = io.StringIO()
        self.plugin = SignalsPlugin(build_sinks(config, self.metrics, log_stream=self.log),
                                    on_sink_error=count_sink_error(self.metrics))
        self.runner = LegRunner(config, self.plugin, quiet=True)

    def run(self) -> RunReport:
        return self.runner.run(uuid.uuid4().hex[:12])

    def count(self, leg: str, result: str) -> float:
        value = self.registry.get_sample_value(
            "instant_payment_probe_outcome_total", {"leg": leg, "result": result})
        assert value is not None
        return value

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines()]


def wired(probe: Probe, collector: EventCollector, **extra: str) -> Wired:
    return Wired(probe.config(PAYMENT_PROBE_EVENTS_URL=collector.url, PAYMENT_PROBE_ENVIRONMENT="test",
                              **extra))


FAULTS = [
    (), ("checkout_500",), ("checkout_502_json",), ("checkout_502_html",), ("checkout_402",),
    ("checkout_404",), ("billing_500",), ("billing_html_200",), ("billing_401",), ("billing_429",),
    ("billing_slow",), ("invoices_500",), ("invoices_404",), ("invoices_huge",),
    ("webhook_accept_unsigned",), ("webhook_accept_forged",), ("webhook_wrong_rejection",),
    ("webhook_500",), ("upgrade_no_flip",), ("upgrade_flip_then_500",), ("upgrade_slow_flip",),
]


@pytest.mark.parametrize("faults", FAULTS, ids=lambda f: "+".join(f) or "healthy")
def test_four_signals_agree(probe: Probe, collector: EventCollector, database_url: str,
                            faults: tuple[str, ...]) -> None:
    slow = {"PAYMENT_PROBE_SLOW_SECONDS": "0.5"} if "billing_slow" in faults else {}  # over the 0.6 s answer
    w = wired(probe, collector, **slow)
    probe.sandbox.faults.replace(faults)
    report = w.run()
    assert len(report.outcomes) == len(LEGS)
    truth = {o.leg: (o.result, o.severity, o.reason) for o in report.outcomes}
    # metrics
    for leg, (result, _, _) in truth.items():
        assert w.count(leg, result) == 1
        assert sum(w.count(leg, r) for r in RESULTS) == 1
    # audit rows, from the real Postgres
    rows = query(database_url, "SELECT leg, result, severity, reason, actor, action, run_id, environment "
                               "FROM audit_log")
    assert {r[0]: r[1:4] for r in rows} == truth
    assert {(r[4], r[5], r[6], r[7]) for r in rows} == {(ACTOR, ACTION, report.run_id, "test")}
    # events, gunzipped from the real POST
    assert len(collector.posts) == 1
    events = collector.events
    assert {e["leg"]: (e["result"], e["severity"], e["reason"]) for e in events} == truth
    assert {(e["eventType"], e["cohort"]) for e in events} == {("InstantPaymentProbe", "synthetic")}
    # log lines
    lines = w.log_lines()
    assert {line["leg"]: (line["result"], line["severity"], line["reason"]) for line in lines} == truth
    for line in lines:
        expected = {"info": "INFO", "warning": "INFO", "error": "ERROR", "critical": "CRITICAL"}
        assert line["level"] == expected[str(line["severity"])]


def test_event_shape_is_flat_with_integer_timestamp(probe: Probe, collector: EventCollector) -> None:
    w = wired(probe, collector, NEW_RELIC_INSERT_KEY="NRII-key-for-shape-test")
    w.run()
    post = collector.posts[0]
    assert post["headers"]["Content-Encoding"] == "gzip"
    assert post["headers"]["Content-Type"] == "application/json"
    assert post["headers"]["Api-Key"] == "NRII-key-for-shape-test"
    for event in collector.events:
        assert isinstance(event["timestamp"], int) and abs(event["timestamp"] - time.time()) < 60
        assert all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in event.values())
        assert event["environment"] == "test" and event["probe_version"]


def test_new_relic_endpoints_by_region() -> None:
    assert endpoint_for("42", "US") == "https://insights-collector.newrelic.com/v1/accounts/42/events"
    assert endpoint_for("42", "EU") == "https://insights-collector.eu01.nr-data.net/v1/accounts/42/events"
    config = load_config({"NEW_RELIC_ACCOUNT_ID": "42", "NEW_RELIC_INSERT_KEY": "k", "NEW_RELIC_REGION": "eu"})
    sinks = build_sinks(config, ProbeMetrics(CollectorRegistry()))
    assert [s.url for s in sinks if isinstance(s, EventSink)] == [
        "https://insights-collector.eu01.nr-data.net/v1/accounts/42/events"]
    assert not any(isinstance(s, EventSink) for s in build_sinks(
        load_config({"NEW_RELIC_ACCOUNT_ID": "42"}), ProbeMetrics(CollectorRegistry())))


def test_two_sessions_one_registry_accumulate(probe: Probe, collector: EventCollector) -> None:
    w = wired(probe, collector)
    w.run()
    w.run()
    assert w.count("billing_state", "pass") == 2
    assert w.count("billing_state", "fail") == 0
    exposition = generate_latest(w.registry).decode()
    assert exposition.count("# TYPE instant_payment_probe_outcome_total counter") == 1


def test_the_scrape_has_no_created_series_and_other_registries_keep_theirs() -> None:
    """Issue 28: importing the metrics module switched the *_created series off for every registry in
    the process (prometheus-client's global); now only the exposition (LocationView) leaves them out."""
    registry = CollectorRegistry()
    metrics = ProbeMetrics(registry, 60)
    metrics.attempts.labels(leg="billing_state", result="pass").inc()
    metrics.latency.labels(leg="billing_state").observe(0.2)
    scraped = generate_latest(LocationView(registry, "eu-west")).decode()  # type: ignore[arg-type]
    assert "_created" not in scraped
    assert 'instant_payment_probe_attempts_total{leg="billing_state",location="eu-west",result="pass"} 1.0' in scraped
    assert "_created" in generate_latest(registry).decode()  # the registry itself is untouched
    other = CollectorRegistry()
    Counter("someone_elses_total", "a counter of another library", registry=other).inc()
    assert "someone_elses_created" in generate_latest(other).decode()


def test_every_series_is_primed_at_zero() -> None:
    registry = CollectorRegistry()
    metrics = ProbeMetrics(registry, 60)
    assert registry.get_sample_value("instant_payment_probe_outcome_total",
                                     {"leg": "billing_state", "result": "pass"}) is None
    metrics.prime()
    for leg in LEGS:
        for result in RESULTS:
            assert registry.get_sample_value("instant_payment_probe_outcome_total",
                                             {"leg": leg, "result": result}) == 0
    for sink in ("metrics", "audit", "events", "log"):
        assert registry.get_sample_value("instant_payment_probe_sink_errors_total", {"sink": sink}) == 0


def test_latency_buckets_end_at_the_leg_timeout() -> None:
    assert latency_buckets(60)[-1] == 60.0 and latency_buckets(60)[0] <= 0.05
    assert latency_buckets(7.5)[-2:] == (5.0, 7.5)
    assert latency_buckets(7.5) == tuple(sorted(latency_buckets(7.5)))


def test_latency_observed_only_with_a_response(probe: Probe, collector: EventCollector) -> None:
    w = wired(probe, collector, PAYMENT_PROBE_BASE_URL="http://127.0.0.1:1")
    w.run()
    assert w.registry.get_sample_value("instant_payment_probe_latency_seconds_count",
                                       {"leg": "billing_state"}) == 0
    assert w.count("billing_state", "fail") == 1


def _outcome(leg: str = "billing_state", **changes: object) -> Outcome:
    base = dict(leg=leg, result="pass", severity="info", reason="ok", latency_seconds=0.1,
                run_id="r1", timestamp=time.time())
    base.update(changes)
    return Outcome(**base)  # type: ignore[arg-type]


def test_a_raising_sink_never_stops_the_others(probe: Probe) -> None:
    config = probe.config()
    registry = CollectorRegistry()
    metrics = ProbeMetrics(registry)
    broken, healthy = MemorySink("events", fail_with=RuntimeError("boom")), MemorySink("log")
    plugin = SignalsPlugin([broken, MetricsSink(metrics), healthy], on_sink_error=count_sink_error(metrics))
    report = LegRunner(config, plugin, quiet=True).run("r-sinks")
    assert len(report.outcomes) == len(LEGS) and len(healthy.recorded) == len(LEGS) and len(healthy.flushed) == 1
    assert {o.result for o in report.outcomes} == {"pass"}
    # one raise per record (one per leg) + 1 flush, each counted
    assert registry.get_sample_value("instant_payment_probe_sink_errors_total", {"sink": "events"}) == len(LEGS) + 1


@pytest.mark.parametrize(("status", "hang", "posts"), [(500, 0.0, 2), (429, 0.0, 2), (400, 0.0, 1),
                                                       (200, 30.0, 1)])
def test_event_api_trouble_is_bounded_and_counted(probe: Probe, status: int, hang: float, posts: int) -> None:
    collector = EventCollector(status=status, hang_seconds=hang)
    try:
        config = probe.config()
        registry = CollectorRegistry()
        metrics = ProbeMetrics(registry)
        memory = MemorySink()
        events = EventSink(collector.url, None, budget_seconds=1.5, attempt_timeout_seconds=1.0)
        plugin = SignalsPlugin([events, memory], on_sink_error=count_sink_error(metrics))
        started = time.monotonic()
        report = LegRunner(config, plugin, quiet=True).run("r-events")
        elapsed = time.monotonic() - started
    finally:
        collector.stop()
    assert {o.result for o in report.outcomes} == {"pass"}
    assert registry.get_sample_value("instant_payment_probe_sink_errors_total", {"sink": "events"}) == 1
    assert len(collector.posts) == posts
    assert elapsed < 1.5 + 8  # the sink's budget plus a healthy run, never the hang's 30 s


def test_event_api_down_is_counted(probe: Probe) -> None:
    registry = CollectorRegistry()
    metrics = ProbeMetrics(registry)
    plugin = SignalsPlugin([EventSink("http://127.0.0.1:1/v1/accounts/1/events", None, budget_seconds=1)],
                           on_sink_error=count_sink_error(metrics))
    report = LegRunner(probe.config(), plugin, quiet=True).run("r-down")
    assert {o.result for o in report.outcomes} == {"pass"}
    assert registry.get_sample_value("instant_payment_probe_sink_errors_total", {"sink": "events"}) == 1


def test_audit_table_is_created_and_checked(database_url: str) -> None:
    migrate(Secret(database_url), "probe_audit")
    migrate(Secret(database_url), "probe_audit")  # idempotent
    assert query(database_url, "SELECT count(*) FROM probe_audit") == [(0,)]
    query(database_url, "CREATE TABLE thin_audit (id uuid PRIMARY KEY, created_at timestamptz, leg text)")
    with pytest.raises(AuditSchemaError) as info:
        migrate(Secret(database_url), "thin_audit")
    assert str(info.value) == (
        "PAYMENT_PROBE_AUDIT_TABLE: table thin_audit lacks columns actor, action, run_id, result, "
        "severity, reason, latency_ms, environment, metadata")


def test_audit_row_columns(probe: Probe, collector: EventCollector, database_url: str) -> None:
    w = wired(probe, collector, PAYMENT_PROBE_AUDIT_TABLE="probe_outcomes")
    report = w.run()
    rows = query(database_url, "SELECT id::text, created_at, latency_ms, metadata FROM probe_outcomes "
                               "WHERE leg = 'billing_state'")
    (row_id, created, latency_ms, metadata), = rows
    outcome = next(o for o in report.outcomes if o.leg == "billing_state")
    assert row_id == outcome.id
    assert abs(created.timestamp() - outcome.timestamp) < 0.01
    assert latency_ms == pytest.approx(outcome.latency_seconds * 1000, abs=0.01)
    assert metadata["probe_version"]


def test_db_outage_drill_loses_nothing(tmp_path: Path) -> None:
    """Stop Postgres mid-session, keep probing, restart: every outcome lands exactly once."""
    with EmbeddedPostgres() as pg:
        ensure_teams_table(pg.url)
        sandbox = start(SandboxSettings(database_url=pg.url, webhook_secret=WEBHOOK_SECRET, plan_id_pro=PLAN_ID))
        try:
            probe = Probe(sandbox, pg.url, tmp_path)
            w = Wired(probe.config())
            produced: list[Outcome] = []
            produced += w.run().outcomes
            pg.stop()
            during = [w.run(), w.run()]
            for report in during:
                produced += report.outcomes
                by_leg = {o.leg: (o.result, o.reason) for o in report.outcomes}
                assert by_leg["upgrade_webhook_e2e"] == by_leg["webhook_replay"] == ("degraded", "mint_failed")
                assert by_leg["billing_state"] == ("pass", "ok")
            spooled = (tmp_path / "spool" / "audit-audit_log.jsonl").read_text().splitlines()
            assert len(spooled) == 2 * len(LEGS)
            assert w.registry.get_sample_value("instant_payment_probe_sink_errors_total", {"sink": "audit"}) == 2
            pg.start()
            produced += w.run().outcomes
            rows = query(pg.url, "SELECT id::text FROM audit_log ORDER BY created_at")
            assert [r[0] for r in rows] == [o.id for o in produced]
            assert not (tmp_path / "spool" / "audit-audit_log.jsonl").exists()
            # one log line when the outage began, not one per row or per run
            assert query(pg.url, "SELECT count(*) FROM teams") == [(0,)]
        finally:
            sandbox.stop()


def test_outage_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    logger = logging.getLogger("payment_probe")
    monkeypatch.setattr(logger, "propagate", True)  # restored after the test
    errors: list[str] = []
    sink = AuditSink(Secret("postgresql://postgres@127.0.0.1:1/x"), "audit_log", tmp_path / "s.jsonl",
                     on_error=errors.append)
    with caplog.at_level(logging.WARNING, logger="payment_probe.audit"):
        for _ in range(3):
            sink.flush([_outcome()])
    assert errors == ["audit"] * 3
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 3


def test_spool_is_bounded_oldest_dropped(tmp_path: Path) -> None:
    sink = AuditSink(Secret("postgresql://postgres@127.0.0.1:1/x"), "audit_log", tmp_path / "s.jsonl",
                     max_spool_rows=4)
    outcomes = [_outcome(reason=f"r{i}") for i in range(6)]
    for outcome in outcomes:
        sink.flush([outcome])
    kept = [json.loads(line)["reason"] for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert kept == ["r2", "r3", "r4", "r5"] and sink.spool.dropped == 2


def test_unwritable_spool_is_counted_and_probing_goes_on(probe: Probe, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spool directory should be")
    registry = CollectorRegistry()
    metrics = ProbeMetrics(registry)
    audit = AuditSink(Secret("postgresql://postgres@127.0.0.1:1/x"), "audit_log", blocker / "spool.jsonl",
                      on_error=lambda name: metrics.sink_errors.labels(sink=name).inc())
    report = LegRunner(probe.config(), SignalsPlugin([audit]), quiet=True).run("r-spool")
    assert {o.result for o in report.outcomes} == {"pass"}
    assert registry.get_sample_value("instant_payment_probe_sink_errors_total", {"sink": "audit"}) == 1


def test_log_levels() -> None:
    stream = io.StringIO()
    sink = LogSink(stream)
    sink.record(_outcome(result="pass"))
    sink.record(_outcome(result="degraded", severity="warning", reason="slow"))
    sink.record(_outcome(result="fail", severity="error", reason="http_status:500"))
    sink.record(_outcome(leg="webhook_security", result="fail", severity="critical", reason="unsigned_accepted"))
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["level"] for line in lines] == ["INFO", "INFO", "ERROR", "CRITICAL"]
    assert set(lines[0]) >= {"leg", "result", "severity", "reason", "latency_seconds", "run_id", "environment",
                             "timestamp"}
    assert lines[0]["timestamp"].endswith("Z")  # UTC


def test_redaction_scans_every_byte(probe: Probe, collector: EventCollector, pg_server: str,
                                    database_url: str, tmp_path: Path) -> None:
    """Distinctive secrets everywhere; a fault that echoes them; not one byte may leak."""
    secrets = {
        "PAYMENT_PROBE_API_TOKEN": "tok_LEAKCANARY_api_7781",
        "RAZORPAY_TEST_WEBHOOK_SECRET": "whsec_LEAKCANARY_hook_5519",
        "NEW_RELIC_INSERT_KEY": "NRII-LEAKCANARY-key-2290",
    }
    password = "pw_LEAKCANARY_db_3307"
    role = f"probe_{uuid.uuid4().hex[:6]}"
    query(pg_server, f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
    db_url = database_url.replace("postgresql://postgres@", f"postgresql://{role}:{password}@")
    probe.sandbox.settings.webhook_secret = secrets["RAZORPAY_TEST_WEBHOOK_SECRET"]
    probe.sandbox.settings.api_token = secrets["PAYMENT_PROBE_API_TOKEN"]
    w = wired(probe, collector, PAYMENT_PROBE_DATABASE_URL=db_url, **secrets)
    json_path = tmp_path / "out.json"
    w.plugin.json_path = str(json_path)
    w.run()
    probe.sandbox.faults.replace(["billing_401", "webhook_accept_forged"])
    w.run()
    probe.sandbox.faults.replace([])
    w.run()
    produced = [
        w.log.getvalue(),
        generate_latest(w.registry).decode(),
        json_path.read_text(),
        "".join(post["raw"].hex() + json.dumps(post["events"]) for post in collector.posts),
        json.dumps([list(map(str, r)) for r in query(database_url, "SELECT * FROM audit_log")]),
    ]
    assert len(query(database_url, "SELECT * FROM audit_log")) == 3 * len(LEGS)
    for blob in produced:
        assert "LEAKCANARY" not in blob
        assert b"LEAKCANARY".hex() not in blob


def test_exception_text_with_a_secret_is_redacted(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("PAYMENT_PROBE_API_TOKEN", "tok_LEAKCANARY_exc_1234")
    monkeypatch.setenv("PAYMENT_PROBE_SPOOL_DIR", str(tmp_path))
    pytester.makepyfile(test_legs="""
import os
def test_billing_state():
    raise RuntimeError("auth header was Bearer " + os.environ["PAYMENT_PROBE_API_TOKEN"])

def test_invoices_reachable():
    raise RuntimeError("X-Razorpay-Signature: " + "ab12" * 16)
""")
    out, log = pytester.path / "o.json", pytester.path / "o.jsonl"
    result = pytester.runpytest_subprocess("-p", "synthetics.plugin", "-p", "runner.signals.plugin",
                                           f"--probe-json={out}", f"--probe-log={log}", "--tb=long", "-l", "-rA")
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    assert all("LEAKCANARY" not in line and "ab12ab12" not in line for line in lines)
    assert "[REDACTED]" in lines[0]
    # pytest's own failure text (the traceback with locals, the summary) is scrubbed too.
    terminal = "\n".join(result.outlines + result.errlines)
    assert "auth header was Bearer [REDACTED]" in terminal
    assert "LEAKCANARY" not in terminal and "ab12ab12" not in terminal


def test_laptop_run_pushes_to_a_pushgateway_grouped_by_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from receivers import PushGateway

    gateway = PushGateway()
    monkeypatch.setenv("PAYMENT_PROBE_ENVIRONMENT", "staging")
    monkeypatch.setenv("PAYMENT_PROBE_SPOOL_DIR", str(tmp_path))
    monkeypatch.delenv("PAYMENT_PROBE_DATABASE_URL", raising=False)
    pytester.makepyfile(test_legs="""
import pytest
from synthetics.failures import LegFailed
def test_billing_state(leg_record):
    leg_record.add_phases({"processing": 0.05}, True)
def test_checkout_reachable():
    raise LegFailed("http_status:503")
""")
    try:
        result = pytester.runpytest_subprocess("-p", "synthetics.plugin", "-p", "runner.signals.plugin",
                                               f"--probe-pushgateway={gateway.url}")
    finally:
        gateway.stop()
    result.assert_outcomes(passed=1, failed=1)
    (path, body), = gateway.pushes
    assert path == "/metrics/job/payment-probe/environment/staging"
    assert 'instant_payment_probe_outcome_total{leg="billing_state",location="local",result="pass"} 1.0' in body
    assert 'instant_payment_probe_outcome_total{leg="checkout_reachable",location="local",result="fail"} 1.0' in body
    assert 'instant_payment_probe_outcome_total{leg="webhook_security",location="local",result="fail"} 0.0' in body


def test_the_redactor_matches_escaped_forms_and_bearer_tokens_to_a_quote() -> None:
    from runner.signals.redact import Redactor

    secret = 'CANARY\\TOK"q;SUFFIX42'
    redactor = Redactor([secret])
    for shown in (secret, repr(secret), ascii(secret), json.dumps(secret)):
        assert "CANARY" not in redactor.text(f"locals: send = {{'k': {shown}}}")
        assert "SUFFIX42" not in redactor.text(f"locals: send = {{'k': {shown}}}")
    # By shape, whatever the value: a bearer token runs to whitespace or a quote, ';' included.
    assert Redactor([]).text("'Authorization': 'Bearer abc;def,ghi' x") == "'Authorization': 'Bearer [REDACTED]' x"


def test_the_latest_reason_of_each_leg_is_one_series() -> None:
    """instant_payment_probe_leg_reason_info (SPEC 4, 20): 1 for the latest reason, the earlier one removed."""
    metrics = ProbeMetrics(CollectorRegistry())
    sink = MetricsSink(metrics)
    for reason in ("ok", "http_status:503", "http_status:503", "ok"):
        sink.record(Outcome(leg="billing_state", result="pass" if reason == "ok" else "fail", severity="info",
                            reason=reason, latency_seconds=0.1, run_id="r", timestamp=0.0))
        text = generate_latest(metrics.registry).decode()
        series = re.findall(r'^instant_payment_probe_leg_reason_info\{leg="billing_state",reason="([^"]+)"\} 1\.0$',
                            text, re.MULTILINE)
        assert series == [reason], text
    sink.record(Outcome(leg="webhook_security", result="fail", severity="critical", reason="unsigned_accepted",
                        latency_seconds=0.1, run_id="r", timestamp=0.0))
    assert metrics.registry.get_sample_value("instant_payment_probe_leg_reason_info",
                                             {"leg": "webhook_security", "reason": "unsigned_accepted"}) == 1


def test_every_providers_signature_header_is_scrubbed_by_its_name() -> None:
    """Not only Razorpay's: Stripe's ``t=…,v1=…`` and Standard Webhooks' ``v1,<base64>`` too, in the
    forms a header dict, a header line and JSON print them."""
    import time as _time
    import uuid as _uuid

    from runner.signals.redact import MASK, Redactor
    from synthetics.providers import PROVIDERS

    redactor = Redactor(())
    for provider in PROVIDERS.values():
        event = provider.upgrade_event(str(_uuid.uuid4()), "plan", _time.time())
        (header, value), *_ = provider.signature_headers(provider.forged_key(), event, int(_time.time())).items()
        assert header == provider.signature_header
        for printed in (f"{header}: {value}", repr({header: value}), json.dumps({header.lower(): value})):
            clean = redactor.text(printed)
            assert MASK in clean and value not in clean and value.split(",")[-1] not in clean, (provider.name, clean)
