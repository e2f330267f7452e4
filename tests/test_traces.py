"""Traces (SPEC section 16): a real OTLP/HTTP receiver on loopback, decoded with the official
``opentelemetry-proto`` messages; the runner and plain pytest as operators run them."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from sandbox.server import SandboxServer

from conftest import LEGS, REPO, probe_env, query
from receivers import EventCollector
from support.processes import cli, pytest_cli

HTTP_LEGS = ("checkout_reachable", "billing_state", "invoices_reachable", "webhook_security",
             "upgrade_webhook_e2e", "webhook_replay")


class OTLPReceiver(ThreadingHTTPServer):
    """``POST /v1/traces``; ``mode``: ok, refuse (503), hang (never answers), trickle (a byte a second)."""

    daemon_threads = True

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.spans: list[tuple[dict[str, Any], Span]] = []  # (resource attributes, span)
        self.posts = 0
        self.headers: list[dict[str, str]] = []
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _OTLPHandler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


class _OTLPHandler(BaseHTTPRequestHandler):
    server: OTLPReceiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.posts += 1
        self.server.headers.append(dict(self.headers.items()))
        if self.server.mode == "hang":
            self.server.stopping.wait(60)
            return
        if self.server.mode == "refuse":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.server.spans += [(resource, span) for span in scope.spans]
        answer = ExportTraceServiceResponse().SerializeToString()
        if self.server.mode == "trickle":  # a valid answer, padded, a byte a second: never done in time
            answer = b"\x00" * 30
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.server.mode == "trickle":
            for byte in answer:
                if self.server.stopping.wait(1.0):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            return
        self.wfile.write(answer)


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _attrs(span: Span) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in span.attributes}


@pytest.fixture
def receiver() -> Any:
    r = OTLPReceiver()
    yield r
    r.stop()


def _log_lines(stderr: str) -> list[dict[str, Any]]:
    lines = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "leg" in record:
            lines.append(record)
    return lines


def test_a_run_is_one_root_span_a_span_per_leg_and_per_exchange(
        receiver: OTLPReceiver, sandbox: SandboxServer, database_url: str, tmp_path: Path) -> None:
    events = EventCollector()
    env = probe_env(sandbox, database_url, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                    OTEL_SERVICE_NAME="probe-under-test", OTEL_RESOURCE_ATTRIBUTES="team=billing,region=eu",
                    PAYMENT_PROBE_ENVIRONMENT="drill", PAYMENT_PROBE_EVENTS_URL=events.url,
                    NEW_RELIC_ACCOUNT_ID="1", NEW_RELIC_INSERT_KEY="NRII-traces-test")
    try:
        proc = cli("run", "--once", "--json", env=env, timeout=180)
    finally:
        events.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    spans = [s for _, s in receiver.spans]
    resource = receiver.spans[0][0]
    assert (resource["service.name"], resource["team"], resource["region"]) == ("probe-under-test", "billing", "eu")
    roots = [s for s in spans if s.name == "payment-probe run"]
    assert len(roots) == 1
    root = roots[0]
    assert not root.parent_span_id
    assert _attrs(root)["test.suite.name"] == "payment-probe"
    assert _attrs(root)["test.suite.run.status"] == "success"
    assert _attrs(root)["deployment.environment.name"] == "drill"
    legs = {s.name.removeprefix("payment-probe leg "): s for s in spans if s.name.startswith("payment-probe leg ")}
    assert sorted(legs) == sorted(LEGS) and len([s for s in spans if s.name.startswith("payment-probe leg")]) == len(LEGS)
    for name, span in legs.items():
        assert span.parent_span_id == root.span_id and span.trace_id == root.trace_id
        attributes = _attrs(span)
        assert (attributes["test.case.name"], attributes["test.case.result.status"], attributes["payment_probe.result"],
                attributes["payment_probe.reason"], attributes["payment_probe.attempt"]) == (name, "pass", "pass", "ok", 1)
    clients = [s for s in spans if s.kind == Span.SpanKind.SPAN_KIND_CLIENT]
    by_leg = Counter(next(n for n, leg in legs.items() if leg.span_id == c.parent_span_id) for c in clients)
    # one per exchange: security 2 (razorpay signs no time), upgrade 1, replay 3, the reachability legs 1 each
    assert by_leg == {"checkout_reachable": 1, "billing_state": 1, "invoices_reachable": 1, "webhook_security": 2,
                      "upgrade_webhook_e2e": 1, "webhook_replay": 3}
    for client in clients:
        attributes = _attrs(client)
        assert attributes["http.request.method"] in ("GET", "POST")
        assert attributes["url.full"].startswith(sandbox.url) and "?" not in attributes["url.full"]
        assert attributes["server.address"] == "127.0.0.1" and attributes["server.port"] == sandbox.server_address[1]
        assert isinstance(attributes["http.response.status_code"], int)
        assert {f"payment_probe.phase.{p}_seconds" for p in ("resolve", "connect", "tls", "processing", "transfer")} \
            <= set(attributes)
    # The traceparent each sandbox request carried names its exchange's span.
    sent = {r["headers"]["traceparent"]: r["headers"].get("tracestate") for r in sandbox.requests
            if "traceparent" in r["headers"]}
    assert {p.rsplit("-", 1)[0] for p in sent} == {f"00-{c.trace_id.hex()}-{c.span_id.hex()}" for c in clients}
    assert len(sent) == len(clients) and all(int(p.rsplit("-", 1)[1], 16) & 1 for p in sent)  # sampled
    assert set(sent.values()) == {"payment-probe=synthetic"}
    # Each outcome's trace id is its leg span's: audit metadata, the event's trace.id, the log line.
    trace = root.trace_id.hex()
    rows = dict(query(database_url, "SELECT leg, metadata->>'trace_id' FROM audit_log"))
    assert rows == dict.fromkeys(LEGS, trace)
    assert {line["leg"]: line["trace_id"] for line in _log_lines(proc.stderr)} == dict.fromkeys(LEGS, trace)
    assert {e["leg"]: e["trace.id"] for e in events.events} == dict.fromkeys(LEGS, trace)


def test_a_failing_leg_and_its_exchange_are_errors_with_the_incident_trace(
        receiver: OTLPReceiver, sandbox: SandboxServer, database_url: str, tmp_path: Path) -> None:
    sandbox.faults.replace(["billing_500"])
    env = probe_env(sandbox, database_url, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
    proc = cli("run", "--once", "--json", env=env, timeout=180)
    assert proc.returncode == 1
    spans = [s for _, s in receiver.spans]
    leg = next(s for s in spans if s.name == "payment-probe leg billing_state")
    assert leg.status.code == Status.STATUS_CODE_ERROR
    assert _attrs(leg)["payment_probe.reason"] == "http_status:500" and _attrs(leg)["payment_probe.severity"] == "error"
    client = next(s for s in spans if s.parent_span_id == leg.span_id)
    assert _attrs(client)["http.response.status_code"] == 500 and _attrs(client)["error.type"] == "500"
    root = next(s for s in spans if s.name == "payment-probe run")
    assert _attrs(root)["test.suite.run.status"] == "failure"
    from runner.status import StatusSource
    from synthetics.secret import Secret

    incident = next(i for i in StatusSource(Secret(database_url), "audit_log", 300).snapshot()["incidents"]
                    if i["leg"] == "billing_state")
    assert incident["trace_id"] == leg.trace_id.hex()


@pytest.mark.parametrize("mode", ["none", "refuse", "hang", "trickle", "down"])
def test_a_collector_that_refuses_hangs_or_trickles_costs_a_run_nothing(
        mode: str, sandbox: SandboxServer, database_url: str, tmp_path: Path) -> None:
    collector = OTLPReceiver("ok" if mode in ("none", "down") else mode)
    extra: dict[str, str] = {}
    if mode == "down":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            extra["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{s.getsockname()[1]}"
    elif mode != "none":
        extra["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.endpoint
    env = probe_env(sandbox, database_url, tmp_path, **extra)
    started = time.monotonic()
    try:
        proc = cli("run", "--once", "--json", env=env, timeout=180)
    finally:
        collector.stop()
    took = time.monotonic() - started
    print(f"run --once with the collector {mode}: {took:.1f}s")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {o["result"] for o in json.loads(proc.stdout)} == {"pass"}
    assert query(database_url, "SELECT count(*) FROM audit_log") == [(len(LEGS),)]  # nothing lost elsewhere
    # The run plus the exit's bounded flush (5 s): never the collector's own pace.
    assert took < 60
    if mode in ("refuse", "hang", "trickle", "down"):
        assert "trace export" in proc.stderr


def test_sigterm_exits_within_its_bound_with_a_collector_that_hangs(
        sandbox: SandboxServer, database_url: str, tmp_path: Path) -> None:
    from conftest import free_port
    from support.processes import spawn, wait_for

    collector = OTLPReceiver("hang")
    port = free_port()
    env = probe_env(sandbox, database_url, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
                    OTEL_BSP_SCHEDULE_DELAY="200", PAYMENT_PROBE_INTERVAL_SECONDS="2",
                    PAYMENT_PROBE_METRICS_PORT=str(port))
    runner = spawn("run", env=env)
    try:
        wait_for(lambda: collector.posts >= 1, 120, "an export to the hanging collector")
        started = time.monotonic()
        runner.terminate()
        runner.communicate(timeout=120)
        took = time.monotonic() - started
    finally:
        collector.stop()
    print(f"SIGTERM with a hanging collector: exit {runner.returncode} after {took:.1f}s")
    assert runner.returncode == 0
    assert took < 40  # the run in progress (leg timeout 8 s) plus the 5 s export bound, not the collector's 60 s


def test_without_an_endpoint_no_span_is_made_and_the_sdk_is_not_imported(sandbox: SandboxServer,
                                                                         database_url: str, tmp_path: Path) -> None:
    child = (
        "import sys, uuid, warnings; warnings.filterwarnings('ignore')\n"
        "from runner.app import App\n"
        "from synthetics.config import load_config\n"
        "app = App(load_config(), serve_http=False, clustered=False, first_run_grace_seconds=0).start()\n"
        "report = app.run_once()\n"
        "print(len(report.outcomes), any(m.startswith('opentelemetry') for m in sys.modules), app.traces)\n"
    )
    for disabled in ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"}):
        env = {**probe_env(sandbox, database_url, tmp_path), **disabled}
        proc = subprocess.run([sys.executable, "-c", child], env={**_base(), **env}, capture_output=True, text=True,
                              timeout=120, cwd=REPO)
        assert proc.stdout.split() == [str(len(LEGS)), "False", "None"], proc.stderr[-2000:]
    assert all("traceparent" not in r["headers"] for r in sandbox.requests)


def _base() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("PAYMENT_PROBE_", "OTEL_", "RAZORPAY_"))}


def test_plain_pytest_exports_the_same_spans(receiver: OTLPReceiver, sandbox: SandboxServer, database_url: str,
                                             tmp_path: Path) -> None:
    env = probe_env(sandbox, database_url, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
    env.pop("PAYMENT_PROBE_ENABLED")
    proc = pytest_cli("-m", "prod_safe", env=env)
    assert proc.returncode == 0, proc.stdout[-2000:]
    names = Counter(s.name for _, s in receiver.spans)
    assert names["payment-probe run"] == 1
    assert {n.removeprefix("payment-probe leg ") for n in names if n.startswith("payment-probe leg ")} == {
        "checkout_reachable", "billing_state", "invoices_reachable", "webhook_security", "tls_certificate"}


def test_under_xdist_the_workers_export_the_exchanges_and_every_outcome_carries_the_trace(
        receiver: OTLPReceiver, sandbox: SandboxServer, database_url: str, tmp_path: Path) -> None:
    """``pytest -n 2``: the legs run in two workers, which make their leg and CLIENT spans under the
    controller's run span; every outcome the controller decides carries that trace."""
    env = probe_env(sandbox, database_url, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
    env.pop("PAYMENT_PROBE_ENABLED")
    sandbox.faults.replace(["billing_500"])  # one leg fails: its span and its exchange are errors
    out = tmp_path / "outcomes.json"
    proc = pytest_cli("-m", "prod_safe", "-n", "2", f"--probe-json={out}", env=env)
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "2 workers" in proc.stdout, "the legs ran under xdist"
    spans = [s for _, s in receiver.spans]
    roots = [s for s in spans if s.name == "payment-probe run"]
    assert len(roots) == 1 and not roots[0].parent_span_id
    root = roots[0]
    assert _attrs(root)["test.suite.run.status"] == "failure"
    legs = {s.name.removeprefix("payment-probe leg "): s for s in spans if s.name.startswith("payment-probe leg ")}
    prod_safe = {"checkout_reachable", "billing_state", "invoices_reachable", "webhook_security", "tls_certificate"}
    assert set(legs) == prod_safe and len([s for s in spans if s.name.startswith("payment-probe leg ")]) == 5
    for name, span in legs.items():
        assert (span.parent_span_id, span.trace_id) == (root.span_id, root.trace_id), name
        assert _attrs(span)["payment_probe.result"] == ("fail" if name == "billing_state" else "pass")
    assert _attrs(legs["billing_state"])["payment_probe.reason"] == "http_status:500"
    assert legs["billing_state"].status.code == Status.STATUS_CODE_ERROR
    clients = [s for s in spans if s.kind == Span.SpanKind.SPAN_KIND_CLIENT]
    by_leg = Counter(next(n for n, leg in legs.items() if leg.span_id == c.parent_span_id) for c in clients)
    assert by_leg == {"checkout_reachable": 1, "billing_state": 1, "invoices_reachable": 1, "webhook_security": 2}
    assert all(c.trace_id == root.trace_id for c in clients)
    failing = next(c for c in clients if c.parent_span_id == legs["billing_state"].span_id)
    assert _attrs(failing)["http.response.status_code"] == 500
    sent = {r["headers"]["traceparent"].rsplit("-", 1)[0] for r in sandbox.requests if "traceparent" in r["headers"]}
    assert sent == {f"00-{c.trace_id.hex()}-{c.span_id.hex()}" for c in clients}
    outcomes = {o["leg"]: o for o in json.loads(out.read_text())}
    assert set(outcomes) == prod_safe
    assert {leg: o["trace_id"] for leg, o in outcomes.items()} == dict.fromkeys(prod_safe, root.trace_id.hex())
