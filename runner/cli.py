"""``payment-probe``: run, run --once, gate, sandbox, migrate, sweep, maintenance, demo.

Configuration is read and validated here, once, at the edge; a bad value exits 2 with one
line naming the variable and the accepted form (never a secret's value).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import warnings
from collections.abc import Sequence

from synthetics import __version__
from synthetics.config import ConfigError, ProbeConfig, applicable, load_config
from synthetics.providers import PROVIDERS
from synthetics.secret import reveal

log = logging.getLogger("payment_probe.cli")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
DISABLED_LINE = "payment-probe: disabled (PAYMENT_PROBE_ENABLED is off); no legs run"


def _die(message: str) -> int:
    print(f"payment-probe: {message}", file=sys.stderr)
    return EXIT_CONFIG


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="payment-probe",
        description="Continuous synthetic monitor of a billing API's money path. "
        "Settings come from PAYMENT_PROBE_* environment variables (see README).",
    )
    parser.add_argument("--version", action="version", version=f"payment-probe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the legs every interval (flag-gated by PAYMENT_PROBE_ENABLED)",
                         description="Run each leg on its interval (PAYMENT_PROBE_LEG_INTERVALS), one replica "
                         "per cluster, serving /metrics and /healthz.")
    run.add_argument("--once", action="store_true",
                     help="run one cycle and exit: 0 nothing failed, 1 a leg failed, 2 bad configuration")
    run.add_argument("--json", action="store_true",
                     help="with --once: print the outcomes as a JSON array on stdout (and nothing else)")

    sub.add_parser("gate", add_help=False,
                   help="run the legs once as a CI gate: exit 1 on a failed (or, by default, degraded) leg; "
                   "'payment-probe gate --help' for its options")

    sub.add_parser("sandbox", add_help=False,
                   help="serve the reference billing API with switchable faults "
                   "('payment-probe sandbox --help' for its options; needs the [sandbox] extra)")

    sub.add_parser("migrate", help="create the audit table (PAYMENT_PROBE_AUDIT_TABLE) if missing",
                   description="Create the audit table if missing and check an existing one's columns.")
    sub.add_parser("sweep", help="reap leftover cohort teams once and print how many",
                   description="Delete cohort teams (is_test_cohort, payment-probe-cohort- prefix) older "
                   "than the leg timeout; never touches any other row.")

    mt = sub.add_parser("maintenance", help="open, end or list maintenance windows (paging alerts stay silent)",
                        description="Maintenance windows live in Postgres, so every replica sees them: the legs "
                        "still run and record maintenance: true; page and critical alerts stay silent.")
    mt_sub = mt.add_subparsers(dest="maintenance_command", required=True, metavar="ACTION")
    mt_start = mt_sub.add_parser("start", help="open a window now (or later with --starts-in)")
    mt_start.add_argument("--for", dest="length", required=True, metavar="DURATION",
                          help="how long, e.g. 30m, 2h, 1h30m (at most 24h)")
    mt_start.add_argument("--reason", required=True, help="why: shown on the status page and in every outcome")
    mt_start.add_argument("--starts-in", default="0s", metavar="DURATION", help="open it later (default now)")
    mt_end = mt_sub.add_parser("end", help="close the open window now, or else cancel the next upcoming one")
    mt_end.add_argument("--id", dest="window_id", type=int, default=None, metavar="N",
                        help="end or cancel window N (its id in 'maintenance list')")
    mt_sub.add_parser("list", help="print open and upcoming windows as JSON lines")

    demo = sub.add_parser("demo", help="embedded Postgres + sandbox + the runner, printing each run",
                          description="The README's main job: everything on loopback, until Ctrl-C.")
    demo.add_argument("--fault", action="append", default=[], metavar="NAME")
    demo.add_argument("--provider", choices=list(PROVIDERS), default=None,
                      help="the webhook scheme the sandbox verifies and the legs speak (default "
                      "PAYMENT_PROBE_PROVIDER, else razorpay)")
    demo.add_argument("--interval", type=float, default=None,
                      help="every leg's interval in seconds (default: the HTTP legs every 10 s, the money path "
                      "and the certificate every 30 s, unless PAYMENT_PROBE_LEG_INTERVALS or "
                      "PAYMENT_PROBE_INTERVAL_SECONDS says otherwise)")
    demo.add_argument("--metrics-port", type=int, default=None,
                      help="default 9466, or a free port if that one is busy")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    warnings.filterwarnings("ignore", module="platformdirs")
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["gate"]:  # its options are pytest's too: handed on as they are
        from runner.gate import run_gate

        return run_gate(arguments[1:])
    from runner.extras import MissingExtra, require

    if arguments[:1] == ["sandbox"]:  # the sandbox's own options (sandbox.command), --help before any setting
        try:
            require("sandbox", "payment-probe sandbox")
        except MissingExtra as exc:
            return _die(str(exc))
        from sandbox.command import parse

        args = parse(arguments[1:])
        args.command = "sandbox"
    else:
        args = build_parser().parse_args(arguments)
    from runner.logging_setup import configure_logging, redact_logs

    configure_logging()
    try:
        config = load_config()
    except ConfigError as exc:
        return _die(str(exc))
    redact_logs(config.secrets())
    try:
        return _dispatch(args, config)
    except MissingExtra as exc:
        return _die(str(exc))


def _dispatch(args: argparse.Namespace, config: ProbeConfig) -> int:
    if args.command == "run":
        if args.json and not args.once:
            return _die("--json needs --once")
        return cmd_run(config, once=args.once, as_json=args.json)
    if args.command == "sandbox":
        return cmd_sandbox(args, config)
    if args.command == "migrate":
        return cmd_migrate(config)
    if args.command == "sweep":
        return cmd_sweep(config)
    if args.command == "maintenance":
        return cmd_maintenance(args, config)
    if args.command == "demo":
        from runner.extras import require

        require("sandbox", "payment-probe demo")
        from runner.demo import run_demo

        if args.provider:
            config = dataclasses.replace(config, provider=args.provider,
                                         webhook_path=PROVIDERS[args.provider].default_path,
                                         legs=tuple(leg for leg in config.legs if applicable(leg, args.provider)))
        return run_demo(config, args.fault, args.interval, args.metrics_port)
    return EXIT_CONFIG


def cmd_migrate(config: ProbeConfig) -> int:
    if not config.database_url:
        return _die("PAYMENT_PROBE_DATABASE_URL: expected a postgresql:// URL (it is not set)")
    from runner.audit_store import AuditSchemaError
    from runner.leadership import SlotsTableError
    from runner.schema import prepare
    from synthetics import db

    try:
        prepare(config.database_url, config.audit_table)
    except (AuditSchemaError, SlotsTableError) as exc:
        return _die(str(exc))
    except Exception as exc:
        if db.is_permanent(exc):
            return _die(f"PAYMENT_PROBE_DATABASE_URL: {db.describe(exc)}")
        print(f"payment-probe: migrate failed: database unreachable ({type(exc).__name__})", file=sys.stderr)
        return EXIT_FAILED
    print(f"audit table {config.audit_table} and payment_probe_slots are ready")
    return EXIT_OK


def cmd_maintenance(args: argparse.Namespace, config: ProbeConfig) -> int:
    if not config.database_url:
        return _die("PAYMENT_PROBE_DATABASE_URL: expected a postgresql:// URL (windows live in the database)")
    from runner import maintenance
    from runner.loop import replica_name

    try:
        if args.maintenance_command == "start":
            length = maintenance.parse_duration(args.length, "--for")
            starts_in = maintenance.check_starts_in(
                maintenance.parse_duration(args.starts_in, "--starts-in") if args.starts_in != "0s" else 0.0)
            reason = maintenance.check_window(length, args.reason)
            window = maintenance.start(config.database_url, length, reason, replica_name(), starts_in)
            print(json.dumps(window.as_json()))
        elif args.maintenance_command == "end":
            action, windows = maintenance.end(config.database_url, args.window_id)
            for window in windows:
                print(json.dumps({**window.as_json(), "action": action}))
        else:
            for window in maintenance.list_windows(config.database_url):
                print(json.dumps(window.as_json()))
    except maintenance.MaintenanceError as exc:
        return _die(str(exc))
    except Exception as exc:
        print(f"payment-probe: maintenance {args.maintenance_command} failed: database unreachable "
              f"({type(exc).__name__})", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_sweep(config: ProbeConfig) -> int:
    if not config.database_url:
        return _die("PAYMENT_PROBE_DATABASE_URL: expected a postgresql:// URL (it is not set)")
    from runner.sweep import SweepError, sweep_orphans, sweep_provider_customers

    try:
        reaped = sweep_orphans(config.database_url, config.leg_timeout_seconds)
    except Exception as exc:
        print(f"payment-probe: sweep failed ({type(exc).__name__})", file=sys.stderr)
        return EXIT_FAILED
    print(reaped)
    try:
        customers = sweep_provider_customers(config)
    except SweepError as exc:
        print(f"payment-probe: sweep of the provider's test customers failed ({exc})", file=sys.stderr)
        return EXIT_FAILED
    if config.provider == "stripe" and config.provider_test_key is not None:
        print(f"payment-probe: deleted {customers} leftover synthetic test customer(s) at the provider",
              file=sys.stderr)
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace, config: ProbeConfig) -> int:
    """The sandbox's own command (sandbox.command), with what only the prober knows: the probe's
    settings as defaults, and its embedded Postgres when no database is given."""
    from sandbox.command import CannotServe, ProbeDefaults, serve

    embedded = None
    database_url = args.database_url or reveal(config.database_url)
    if not database_url:
        from runner.embedded_pg import EmbeddedPostgres

        embedded = EmbeddedPostgres()
        database_url = embedded.start()
    try:
        return serve(args, ProbeDefaults(database_url=database_url, provider=config.provider,
                                         webhook_secret=reveal(config.webhook_secret),
                                         plan_id=config.test_plan_id_pro))
    except CannotServe as exc:
        return _die(str(exc))
    finally:
        if embedded is not None:
            embedded.destroy()


def cmd_run(config: ProbeConfig, *, once: bool, as_json: bool) -> int:
    from runner.app import App, StartupError

    if not config.enabled and once:
        print(DISABLED_LINE, file=sys.stderr)
        return EXIT_OK
    try:
        app = App(config, serve_http=not once).start()
    except StartupError as exc:
        return _die(str(exc))
    if once:
        report = app.run_once()
        app.close()
        if as_json:
            sys.stdout.write(json.dumps([o.summary() for o in report.outcomes]) + "\n")
            sys.stdout.flush()
        return EXIT_FAILED if report.failed else EXIT_OK
    app.run_forever()
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
