"""``make demo``: embedded Postgres + sandbox + the runner, enabled, printing each run as a table.

Everything listens on loopback; Ctrl-C finishes the current run, stops the sandbox and
removes the temporary cluster.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
from pathlib import Path

from runner.app import App, StartupError
from runner.embedded_pg import EmbeddedPostgres, free_port
from runner.legrun import RunReport
from runner.signals.table import outcome_table
from synthetics.config import DEFAULT_METRICS_PORT, load_config

DEMO_SECRET = "whsec_demo_only_not_a_real_secret"
DEMO_PLAN = "plan_test_pro"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def format_run(report: RunReport) -> str:
    lines = [f"\nrun {report.run_id}  ({report.duration_seconds:.2f}s)", *outcome_table(report.outcomes)]
    return "\n".join(lines)


def print_run(report: RunReport) -> None:
    print(format_run(report), flush=True)


def run_demo(faults: list[str], interval: float, metrics_port: int | None) -> int:
    from sandbox.faults import UnknownFault
    from sandbox.server import SandboxSettings, start

    port = metrics_port or DEFAULT_METRICS_PORT
    if metrics_port is None and not _port_free(port):
        port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="payment-probe-demo-"))
    pg = EmbeddedPostgres(workdir / "pg")
    print("starting embedded Postgres ...", flush=True)
    database_url = pg.start()
    try:
        from sandbox.tls import make_tls

        # HTTPS with a private CA, as a platform team's billing API would have it.
        tls = make_tls(workdir / "ca.pem", cert_days=90, hostnames=("localhost", "127.0.0.1"))
        try:
            sandbox = start(SandboxSettings(database_url=database_url, webhook_secret=DEMO_SECRET,
                                            plan_id_pro=DEMO_PLAN, faults=faults, tls=tls))
        except UnknownFault as exc:
            print(f"payment-probe: --fault: {exc}", file=sys.stderr)
            return 2
        env = dict(os.environ)
        env.update({
            "PAYMENT_PROBE_ENABLED": "1",
            "PAYMENT_PROBE_BASE_URL": sandbox.url,
            "PAYMENT_PROBE_DATABASE_URL": database_url,
            "RAZORPAY_TEST_WEBHOOK_SECRET": DEMO_SECRET,
            "PAYMENT_PROBE_TEST_PLAN_ID_PRO": DEMO_PLAN,
            "PAYMENT_PROBE_INTERVAL_SECONDS": str(interval),
            "PAYMENT_PROBE_METRICS_PORT": str(port),
            "PAYMENT_PROBE_METRICS_HOST": "127.0.0.1",
            "PAYMENT_PROBE_ENVIRONMENT": env.get("PAYMENT_PROBE_ENVIRONMENT", "demo"),
            "PAYMENT_PROBE_SPOOL_DIR": str(workdir / "spool"),
            "PAYMENT_PROBE_CA_BUNDLE": str(tls.ca_path),
            "PAYMENT_PROBE_LEG_TIMEOUT_SECONDS": env.get("PAYMENT_PROBE_LEG_TIMEOUT_SECONDS", "20"),
            "PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS": env.get("PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS", "5"),
            "PAYMENT_PROBE_UPGRADE_WAIT_SECONDS": env.get("PAYMENT_PROBE_UPGRADE_WAIT_SECONDS", "10"),
        })
        config = load_config(env)
        # The table is the demo's output; per-run bookkeeping lines would interleave with it.
        logging.getLogger("payment_probe.audit").setLevel(logging.WARNING)
        log_path = workdir / "outcomes.jsonl"
        with open(log_path, "a") as log_stream:
            try:
                # No Prometheus scrapes the demo: its first run need not wait for one.
                app = App(config, on_run=print_run, log_stream=log_stream, quiet_pytest=True,
                          first_run_grace_seconds=0.0)
            except StartupError as exc:
                print(f"payment-probe: {exc}", file=sys.stderr)
                return 2
            print(f"sandbox billing API  {sandbox.url}   faults: {', '.join(faults) or 'none'}")
            print(f"private CA (trusted) {tls.ca_path}   (PAYMENT_PROBE_CA_BUNDLE)")
            print(f"metrics              http://127.0.0.1:{port}/metrics   (health: /healthz)")
            print(f"status page          http://127.0.0.1:{port}/status    (machines: /status.json)")
            print(f"JSON outcome log     {log_path}")
            print(f"switch faults live   curl --cacert {tls.ca_path} -X POST {sandbox.url}/_sandbox/faults "
                  "-d '{\"faults\": [\"webhook_accept_unsigned\"]}'")
            print(f"running every {interval:g}s; Ctrl-C to stop", flush=True)
            app.run_forever()
        sandbox.stop()
        return 0
    finally:
        pg.destroy()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
