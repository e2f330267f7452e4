"""``make demo``: embedded Postgres + sandbox + the runner, enabled, printing each run as a table.

Everything listens on loopback; Ctrl-C finishes the current run, stops the sandbox and
removes the temporary cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from runner.app import App, StartupError
from runner.embedded_pg import EmbeddedPostgres, free_port
from runner.legrun import RunReport
from runner.signals.table import outcome_table
from synthetics.config import DEFAULT_METRICS_PORT, ProbeConfig
from synthetics.secret import Secret

DEMO_SECRET = "whsec_ZGVtbyBvbmx5LCBub3QgYSByZWFsIHNlY3JldA=="  # base64 after whsec_: fits every scheme
DEMO_PLAN = "plan_test_pro"
# A cadence that shows the mechanism in a minute (SPEC 18): the HTTP legs every 10 s, the rest every 30 s.
DEMO_INTERVALS = (("checkout_reachable", 10.0), ("billing_state", 10.0), ("invoices_reachable", 10.0),
                  ("webhook_security", 10.0), ("upgrade_webhook_e2e", 30.0), ("tls_certificate", 30.0),
                  ("webhook_replay", 30.0), ("provider_webhook_health", 30.0),
                  ("provider_roundtrip", 30.0))


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


def demo_cadence(base: ProbeConfig, interval: float | None) -> dict[str, object]:
    """``--interval`` for every leg; else the operator's own cadence if they set one; else the demo's."""
    if interval is not None:
        return {"interval_seconds": interval, "leg_intervals": ()}
    if base.interval_seconds is not None or base.leg_intervals:
        return {}
    return {"leg_intervals": DEMO_INTERVALS}


def run_demo(base: ProbeConfig, faults: list[str], interval: float | None, metrics_port: int | None) -> int:
    """``base`` is the operator's validated configuration: the demo replaces what it must (the
    sandbox's URL, the embedded database, the private CA) and keeps the rest."""
    from sandbox.faults import UnknownFault
    from sandbox.server import SandboxSettings, start
    from sandbox.tls import make_tls

    port = metrics_port or DEFAULT_METRICS_PORT
    if metrics_port is None and not _port_free(port):
        port = free_port()
    with contextlib.ExitStack() as cleanup:  # every path out stops and removes what was started
        workdir = Path(tempfile.mkdtemp(prefix="payment-probe-demo-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        pg = EmbeddedPostgres(workdir / "pg")
        print("starting embedded Postgres ...", flush=True)
        database_url = pg.start()
        cleanup.callback(pg.destroy)
        # HTTPS with a private CA, as a platform team's billing API would have it.
        tls = make_tls(workdir / "ca.pem", cert_days=90, hostnames=("localhost", "127.0.0.1"))
        try:
            sandbox = start(SandboxSettings(database_url=database_url, webhook_secret=DEMO_SECRET,
                                            plan_id_pro=DEMO_PLAN, faults=faults, tls=tls, provider=base.provider,
                                            webhook_path=base.webhook_path))
        except UnknownFault as exc:
            print(f"payment-probe: --fault: {exc}", file=sys.stderr)
            return 2
        cleanup.callback(sandbox.stop)
        config = dataclasses.replace(
            base, enabled=True, base_url=sandbox.url, database_url=Secret(database_url),
            webhook_secret=Secret(DEMO_SECRET), test_plan_id_pro=DEMO_PLAN, **demo_cadence(base, interval),  # type: ignore[arg-type]
            metrics_port=port, metrics_host="127.0.0.1", environment=base.environment or "demo",
            spool_dir=str(workdir / "spool"), ca_bundle=str(tls.ca_path),
            # The sandbox is the payment provider too (SPEC 17): the provider legs ask it.
            provider_api_key=_secret(sandbox.settings.provider_api_key),
            provider_test_key=_secret(sandbox.settings.provider_test_key),
            provider_api_url=sandbox.url, public_webhook_url=sandbox.url + sandbox.settings.webhook_path,
            razorpay_account_id=sandbox.settings.razorpay_account_id,
            # Shorter waits than production's, unless the operator set their own.
            leg_timeout_seconds=_unless_set(base, "leg_timeout_seconds", 20.0),
            http_timeout_seconds=_unless_set(base, "http_timeout_seconds", 5.0),
            upgrade_wait_seconds=_unless_set(base, "upgrade_wait_seconds", 10.0),
        )
        # The table is the demo's output; per-run bookkeeping lines would interleave with it.
        logging.getLogger("payment_probe.audit").setLevel(logging.WARNING)
        log_path = workdir / "outcomes.jsonl"
        log_stream = cleanup.enter_context(open(log_path, "a"))
        try:
            # No Prometheus scrapes the demo: its first run need not wait for one.
            app = App(config, on_run=print_run, log_stream=log_stream, quiet_pytest=True,
                      first_run_grace_seconds=0.0).start()
        except StartupError as exc:
            print(f"payment-probe: {exc}", file=sys.stderr)
            return 2
        print(f"sandbox billing API  {sandbox.url}   provider: {config.provider}   faults: "
              f"{', '.join(faults) or 'none'}")
        print(f"private CA (trusted) {tls.ca_path}   (PAYMENT_PROBE_CA_BUNDLE)")
        print(f"metrics              http://127.0.0.1:{port}/metrics   (health: /healthz)")
        print(f"status page          http://127.0.0.1:{port}/status    (machines: /status.json)")
        print(f"JSON outcome log     {log_path}")
        print(f"switch faults live   curl --cacert {tls.ca_path} -X POST {sandbox.url}/_sandbox/faults "
              "-d '{\"faults\": [\"webhook_accept_unsigned\"]}'")
        every = ", ".join(f"{leg} {config.interval_of(leg):g}s" for leg in config.legs)
        print(f"running each leg on its interval ({every}); Ctrl-C to stop", flush=True)
        app.run_forever()
        return 0


def _secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


def _unless_set(base: ProbeConfig, name: str, demo_value: float) -> float:
    value = getattr(base, name)
    return demo_value if value == ProbeConfig.__dataclass_fields__[name].default else float(value)
