"""``payment-probe sandbox``: the sandbox's own options and serving loop, in the sandbox.

The prober's command line hands over what only it knows — the database (its embedded Postgres when
none is given), and the webhook secret, provider and TEST plan of the probe's settings — so this
module, like the rest of the sandbox, imports nothing of the prober.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.faults import UnknownFault
from sandbox.schemes import DEFAULT_PATHS, PROVIDERS
from sandbox.server import SandboxSettings, start
from sandbox.tls import make_tls

SANDBOX_SECRET = "whsec_c2FuZGJveCB0ZXN0IHNlY3JldA=="  # base64 after whsec_: valid for every scheme
SANDBOX_PLAN = "plan_test_pro"


class CannotServe(Exception):
    """One line for the operator (a fault it does not know, a port it cannot listen on): exit 2."""


@dataclass(frozen=True)
class ProbeDefaults:
    """What the probe's settings say when an option is not given (PAYMENT_PROBE_*)."""

    database_url: str
    provider: str
    webhook_secret: str | None = None
    plan_id: str | None = None


def parser(prog: str = "payment-probe sandbox") -> argparse.ArgumentParser:
    paths = ", ".join(DEFAULT_PATHS[p] for p in PROVIDERS)
    sb = argparse.ArgumentParser(
        prog=prog, description="Serve SPEC's billing API contract over HTTP, backed by Postgres "
        "(embedded when no --database-url / PAYMENT_PROBE_DATABASE_URL).")
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--port", type=int, default=8080)
    sb.add_argument("--database-url", default=None)
    sb.add_argument("--fault", action="append", default=[], metavar="NAME",
                    help="start with this fault on (repeatable); change later with POST /_sandbox/faults")
    sb.add_argument("--provider", choices=PROVIDERS, default=None,
                    help="the webhook scheme it verifies (default PAYMENT_PROBE_PROVIDER, else razorpay); "
                    f"the webhook path follows: {paths}")
    sb.add_argument("--webhook-secret", default=None,
                    help="default PAYMENT_PROBE_WEBHOOK_SECRET or RAZORPAY_TEST_WEBHOOK_SECRET, else "
                    f"{SANDBOX_SECRET}")
    sb.add_argument("--plan-id", default=None,
                    help=f"TEST plan id that upgrades; default PAYMENT_PROBE_TEST_PLAN_ID_PRO, else {SANDBOX_PLAN}")
    sb.add_argument("--api-token", default=None, help="demand this bearer token on the billing endpoints")
    sb.add_argument("--provider-webhook-url", default=None, metavar="URL",
                    help="the webhook URL the sandbox, as the payment provider, has registered (default: its own)")
    sb.add_argument("--tls", action="store_true",
                    help="serve HTTPS with a certificate from a CA generated at start (its PEM path is printed)")
    sb.add_argument("--cert-days", type=float, default=90.0,
                    help="with --tls: the leaf certificate's lifetime in days (default 90; negative: expired)")
    sb.add_argument("--ca-out", default=None, metavar="PATH",
                    help="with --tls: write the CA's PEM here (default: a fresh temporary file)")
    return sb


def parse(arguments: Sequence[str]) -> argparse.Namespace:
    """The sandbox's options (``--help`` prints them and exits 0, before any configuration is read)."""
    return parser().parse_args(list(arguments))


def serve(args: argparse.Namespace, defaults: ProbeDefaults) -> int:
    """Serve until SIGTERM or SIGINT, printing where (and the sandbox provider's keys) on stderr."""
    tls = None
    if args.tls:
        ca_out = Path(args.ca_out) if args.ca_out else Path(tempfile.mkdtemp(prefix="payment-probe-ca-")) / "ca.pem"
        tls = make_tls(ca_out, cert_days=args.cert_days)
    settings = SandboxSettings(
        database_url=args.database_url or defaults.database_url,
        webhook_secret=args.webhook_secret or defaults.webhook_secret or SANDBOX_SECRET,
        provider=args.provider or defaults.provider,
        plan_id_pro=args.plan_id or defaults.plan_id or SANDBOX_PLAN,
        api_token=args.api_token, faults=args.fault, tls=tls, provider_webhook_url=args.provider_webhook_url,
    )
    try:
        server = start(settings, args.host, args.port)
    except UnknownFault as exc:
        raise CannotServe(str(exc)) from None
    except OSError as exc:
        raise CannotServe(f"--port: cannot listen on {args.host}:{args.port} ({exc.strerror})") from None
    _say(f"sandbox billing API on {server.url} (faults: {', '.join(args.fault) or 'none'})")
    if tls is not None:
        _say(f"sandbox CA certificate: {tls.ca_path} (set PAYMENT_PROBE_CA_BUNDLE to it)")
    if settings.provider in ("stripe", "razorpay"):
        # Sandbox keys, not secrets: they open nothing but this process's provider API.
        where = "/v1/" if settings.provider == "stripe" else f"/v2/accounts/{settings.razorpay_account_id}/"
        _say(f"sandbox {settings.provider} API on {server.url}{where} "
             f"(PAYMENT_PROBE_PROVIDER_API_URL={server.url}); read-only key: {settings.provider_api_key}"
             + (f"; TEST key: {settings.provider_test_key}" if settings.provider_test_key else "")
             + (f"; account: {settings.razorpay_account_id}" if settings.provider == "razorpay" else ""))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(1.0):
        pass
    server.stop()
    return 0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
