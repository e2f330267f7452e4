"""A reference billing API that speaks SPEC.md's contract over real HTTP, with switchable faults.

It shares no code with the prober on purpose (not even constants): a reference that reused
the prober's signer or paths would agree with the prober's bugs.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from sandbox import provider_api, schemes
from sandbox.faults import FaultSet, UnknownFault
from sandbox.tls import SandboxTLS

MAX_WEBHOOK_BYTES = 1024 * 1024
log = logging.getLogger("payment_probe.sandbox")

TEAMS_DDL = """
CREATE TABLE IF NOT EXISTS teams (
  id             uuid PRIMARY KEY,
  name           text NOT NULL,
  plan_tier      text NOT NULL DEFAULT 'hobby',
  is_test_cohort boolean NOT NULL DEFAULT false,
  created_at     timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass
class SandboxSettings:
    database_url: str
    webhook_secret: str = "whsec_sandbox_test"
    plan_id_pro: str = "plan_test_pro"
    tier_for_plan: str = "pro"
    webhook_path: str = ""  # default: the provider's (/razorpay/webhook, /stripe/webhook, /webhooks)
    provider: str = "razorpay"  # razorpay, stripe or standard
    cancelled_tier: str = "hobby"  # what a cancellation sets
    api_token: str | None = None  # when set, billing endpoints demand this bearer token
    slow_seconds: float = 2.5  # billing_slow: just past the 2 s budget, still correct
    flip_delay_seconds: float = 3.0  # upgrade_slow_flip
    faults: list[str] = field(default_factory=list)
    tls: SandboxTLS | None = None  # serve HTTPS with this context (see sandbox.tls.make_tls)
    # The sandbox as the payment provider (sandbox.provider_api): its keys, the account, the URL it has
    # registered (default: its own webhook), and its list page size (small, so pagination is exercised).
    provider_api_key: str | None = None  # default: rk_test_… (stripe), key_id:key_secret (razorpay)
    provider_test_key: str | None = None  # default: sk_test_… (stripe)
    razorpay_account_id: str = "acc_SandboxPartner01"
    provider_webhook_url: str | None = None
    provider_page_size: int = 2


def ensure_teams_table(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(TEAMS_DDL)


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], settings: SandboxSettings) -> None:
        if settings.provider not in schemes.PROVIDERS:
            raise ValueError(f"unknown provider {settings.provider!r}; known: {', '.join(schemes.PROVIDERS)}")
        settings.webhook_path = settings.webhook_path or schemes.DEFAULT_PATHS[settings.provider]
        if settings.provider_api_key is None:
            settings.provider_api_key = {
                "stripe": "rk_test_51SandboxReadOnlyKey0000",
                "razorpay": "rzp_test_SandboxKey01:SandboxPartnerSecret01"}.get(settings.provider)
        if settings.provider_test_key is None and settings.provider == "stripe":
            settings.provider_test_key = "sk_test_51SandboxTestModeKey0000"
        self.started_at = time.time()
        from sandbox.provider_engine import StripeTestMode

        self.provider_engine = StripeTestMode(self)  # serves only when the provider is stripe
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.settings = settings
        self.faults = FaultSet(settings.faults)
        self.stopping = threading.Event()
        self.seen_event_ids: set[str] = set()
        self.seen_lock = threading.Lock()
        self.subscriptions: dict[str, str] = {}  # team id -> the subscription its latest upgrade named
        self.requests: deque[dict[str, Any]] = deque(maxlen=500)
        super().__init__(address, SandboxHandler)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        scheme = "https" if self.settings.tls else "http"
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        if self.settings.tls is not None:
            # The handshake runs in the handler's thread (setup), never in the accept loop.
            sock = self.settings.tls.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def set_tier(self, team_id: str, tier: str) -> int:
        with psycopg.connect(self.settings.database_url, autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute("UPDATE teams SET plan_tier = %s WHERE id = %s", (tier, team_id))
            return int(cur.rowcount)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that hung up or failed the TLS handshake (the TLS tests do both)
        super().handle_error(request, client_address)

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="sandbox", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


class SandboxHandler(BaseHTTPRequestHandler):
    server: SandboxServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the demo prints outcomes; per-request access logs would drown them

    def setup(self) -> None:
        if self.server.settings.tls is not None:
            self.request.settimeout(10)
            try:
                self.request.do_handshake()
            except OSError:
                self.request.close()
                raise
            self.request.settimeout(None)
        super().setup()
        # Headers and body leave in separate writes; without NODELAY, Nagle plus the client's
        # delayed ACK adds ~40 ms to some answers and would pollute latency measurements.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ---- plumbing -------------------------------------------------------------------------
    def _record(self) -> None:
        traceparent = self.headers.get("traceparent")
        if traceparent:  # the join: this request is the probe span's, in the probe's trace
            log.info("%s %s traceparent=%s tracestate=%s", self.command, self.path.split("?", 1)[0][:100],
                     traceparent[:55], (self.headers.get("tracestate") or "")[:100])
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
             "body": b""}
        )

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode())

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_WEBHOOK_BYTES)) if length > 0 else b""
        if self.server.requests:
            self.server.requests[-1]["body"] = body[:4096]
        return body

    def _authorized(self) -> bool:
        token = self.server.settings.api_token
        if token is None:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    # ---- routing --------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._record()
        path, _, raw_query = self.path.partition("?")
        if provider_api.respond(self, path, raw_query):
            return
        if path == "/healthz":
            self._json(200, {"status": "ok"})
        elif path == "/_sandbox/faults":
            self._json(200, {"faults": sorted(self.server.faults.active)})
        elif path == "/api/v1/billing":
            self._billing()
        elif path == "/api/v1/billing/invoices":
            self._invoices()
        else:
            self._json(404, {"error": "not_found"})

    def do_DELETE(self) -> None:
        self._record()
        path, _, raw_query = self.path.partition("?")
        if not provider_api.respond(self, path, raw_query, "DELETE"):
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        self._record()
        path, _, raw_query = self.path.partition("?")
        if path.startswith("/v1/") and provider_api.respond(self, path, raw_query, "POST", self._read_body()):
            return
        if path == "/_sandbox/faults":
            self._set_faults()
        elif path == "/api/v1/billing/checkout":
            self._read_body()
            self._checkout()
        elif path == self.server.settings.webhook_path:
            self._webhook()
        else:
            self._read_body()
            self._json(404 if path.startswith("/api/") else 405, {"error": "not_found"})

    def _set_faults(self) -> None:
        try:
            names = json.loads(self._read_body() or b"{}").get("faults", [])
            if not isinstance(names, list):
                raise UnknownFault("faults must be a list of names")
            self.server.faults.replace(str(n) for n in names)
        except (UnknownFault, ValueError, AttributeError) as exc:
            self._json(400, {"error": "bad_fault", "detail": str(exc)})
            return
        self._json(200, {"faults": sorted(self.server.faults.active)})

    # ---- shared fault handling for the reachability endpoints ------------------------------
    def _common_faults(self, endpoint: str) -> bool:
        """Apply the generic ``_status_``/``_delay_`` faults; True when a response was sent."""
        faults = self.server.faults
        delay = faults.delay_ms_for(endpoint)
        if delay:
            self.server.stopping.wait(delay / 1000)
        status = faults.status_for(endpoint)
        if status is not None:
            self._json(status, {"error": f"sandbox_status_{status}"})
            return True
        if endpoint != "webhook" and not self._authorized():
            self._json(401, {"error": "unauthorized"})
            return True
        return False

    def _checkout(self) -> None:
        faults = self.server.faults
        if self._common_faults("checkout"):
            return
        if "checkout_500" in faults:
            self._json(500, {"error": "internal"})
        elif "checkout_502_json" in faults:
            self._json(502, {"error": "provider_unavailable"})
        elif "checkout_502_html" in faults:
            self._send(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
        elif "checkout_402" in faults:
            self._json(402, {"error": "live_billing_disabled"})
        elif "checkout_404" in faults:
            self._json(404, {"error": "not_found"})
        else:
            session = uuid.uuid4().hex[:16]
            self._json(200, {"checkout_session_id": f"cs_test_{session}",
                             "url": f"https://checkout.example.test/{session}", "synthetic": True})

    def _billing(self) -> None:
        faults = self.server.faults
        if self._common_faults("billing"):
            return
        if "billing_500" in faults:
            self._json(500, {"error": "internal"})
        elif "billing_html_200" in faults:
            self._send(200, b"<!doctype html><html><body>Welcome</body></html>", "text/html")
        elif "billing_401" in faults:
            self._json(401, {"error": "unauthorized"})
        elif "billing_429" in faults:
            self._json(429, {"error": "rate_limited"}, )
        elif "billing_redirect" in faults:
            self._send(302, b"", extra={"Location": "https://login.example.test/"})
        else:
            if "billing_slow" in faults:
                self.server.stopping.wait(self.server.settings.slow_seconds)
            self._json(200, {"plan_tier": "hobby", "status": "active", "seats": 1})

    def _invoices(self) -> None:
        faults = self.server.faults
        if self._common_faults("invoices"):
            return
        if "invoices_500" in faults:
            self._json(500, {"error": "internal"})
        elif "invoices_404" in faults:
            self._json(404, {"error": "not_found"})
        elif "invoices_hang" in faults:
            self.server.stopping.wait(3600)  # never answers (until the sandbox stops)
        elif "invoices_huge" in faults:
            self._endless_body()
        elif "invoices_trickle" in faults:
            self._trickle()
        elif "invoices_bad_utf8" in faults:
            self._send(200, b'{"invoices": ["\xff\xfe\xfa"]}')
        elif "invoices_deep_json" in faults:
            self._send(200, b"[" * 100_000 + b"]" * 100_000)
        elif "invoices_string_200" in faults:
            self._json(200, "ok")
        else:
            self._json(200, {"invoices": [], "has_more": False})

    def _endless_body(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"[" + b'{"id":"in_sandbox"},' * 3000
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        try:
            while not self.server.stopping.is_set():
                self.wfile.write(frame)
        except OSError:
            pass  # the client hung up, as it should
        self.close_connection = True

    def _trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        try:
            while not self.server.stopping.wait(1.0):
                self.wfile.write(b" ")
                self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    # ---- the webhook ------------------------------------------------------------------------
    def _webhook(self) -> None:
        faults = self.server.faults
        settings = self.server.settings
        body = self._read_body()
        if self._common_faults("webhook"):
            return
        if "provider_deliveries_failing" in faults and self.headers.get("User-Agent", "").startswith("Stripe/"):
            self._json(500, {"error": "internal"})  # the billing API fails the provider's own deliveries
            return
        headers = {name: self.headers.get(name, "") for name in self.headers.keys()}  # noqa: SIM118
        verdict = schemes.verify(settings.provider, settings.webhook_secret, headers, body, time.time())
        if verdict.signature != "valid":
            if "webhook_500" in faults:  # the signature gate crashes; signed events still flow
                self._json(500, {"error": "internal"})
                return
            accepting = "webhook_accept_unsigned" if verdict.signature == "missing" else "webhook_accept_forged"
            if accepting in faults:
                self._json(200, {"status": "accepted"})
            elif "webhook_wrong_rejection" in faults:
                self._json(400, {"error": "bad_request"})
            else:
                self._json(400, {"error": "invalid_signature"})
            return
        try:
            event = json.loads(body)
        except ValueError:
            self._json(400, {"error": "invalid_payload"})
            return
        if not verdict.fresh and "webhook_accept_stale" not in faults:
            self._json(400, {"error": "stale_event"})
            return
        with self.server.seen_lock:
            duplicate = bool(verdict.event_id) and verdict.event_id in self.server.seen_event_ids
            if verdict.event_id:
                self.server.seen_event_ids.add(verdict.event_id)
        if duplicate and "webhook_no_dedup" not in faults:
            if "webhook_duplicate_409" in faults:  # refused, not acknowledged: the provider retries for hours
                self._json(409, {"error": "already_processed"})
                return
            self._json(200, {"status": "duplicate"})  # acknowledged, never applied twice
            return
        self._apply(schemes.change_of(settings.provider, event))

    def _apply(self, change: schemes.Change | None) -> None:
        faults = self.server.faults
        settings = self.server.settings
        if change is None or change.plan_id != settings.plan_id_pro:
            self._json(200, {"status": "ignored"})
            return
        if change.action == "cancel":
            if "cancel_ignored" in faults:
                self._json(200, {"status": "applied"})
                return
            # As a real billing API does: a cancellation ends the subscription it names, so one that
            # names a subscription the team is not on is acknowledged and changes nothing.
            with self.server.seen_lock:
                current = self.server.subscriptions.get(change.team_id)
            if current is not None and current != change.subscription:
                self._json(200, {"status": "ignored", "detail": "not the team's subscription"})
                return
            try:
                updated = self.server.set_tier(change.team_id, settings.cancelled_tier)
            except psycopg.Error:
                self._json(503, {"error": "database_unavailable"})
                return
            self._json(200, {"status": "applied" if updated else "ignored"})
            return
        team_id = change.team_id
        with self.server.seen_lock:
            self.server.subscriptions[team_id] = change.subscription
        if "upgrade_no_flip" in faults:
            self._json(200, {"status": "applied"})
            return
        if "upgrade_slow_flip" in faults:
            timer = threading.Timer(
                settings.flip_delay_seconds, self._flip_quietly, (team_id, settings.tier_for_plan)
            )
            timer.daemon = True
            timer.start()
            self._json(200, {"status": "applied"})
            return
        try:
            updated = self.server.set_tier(team_id, settings.tier_for_plan)
        except psycopg.Error:
            self._json(503, {"error": "database_unavailable"})
            return
        if "upgrade_flip_then_500" in faults:
            self._json(500, {"error": "internal"})
            return
        self._json(200, {"status": "applied" if updated else "ignored"})

    def _flip_quietly(self, team_id: str, tier: str) -> None:
        with contextlib.suppress(psycopg.Error):
            self.server.set_tier(team_id, tier)


def start(settings: SandboxSettings, host: str = "127.0.0.1", port: int = 0) -> SandboxServer:
    """Create the teams table if missing and serve in a background thread."""
    ensure_teams_table(settings.database_url)
    server = SandboxServer((host, port), settings)
    server.start_background()
    return server
