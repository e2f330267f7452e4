"""``/metrics`` (Prometheus exposition), ``/healthz`` (is the loop alive and ticking?) and ``/status``.

A monitor's own endpoint must not be the thing that silences it. A thread per connection lets a
flood of idle connections pin thousands of threads; a worker that reads a request with a per-read
timeout is held for as long as a client trickles a byte at a time (the per-read problem
``synthetics.wire`` fixed on the client side). So here, as there, one deadline per exchange:

- one thread accepts connections and reads every request head itself, non-blocking, with h11
  (strict HTTP/1.1 framing): a head that is not complete ``HEAD_SECONDS`` after the connection
  was accepted ends the connection, whatever the client trickles;
- ``/healthz`` is answered on that thread at once (a few hundred bytes, sent without blocking):
  it never waits behind a worker, a slow client or the database;
- any other route goes to one of a few workers with what is left of ``EXCHANGE_SECONDS``; its
  answer is written under that deadline, so a client that will not read cannot hold a worker.

A handler error is one JSON log line, never a raw traceback on stderr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import h11
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger("payment_probe.http")

HEAD_SECONDS = 5.0  # the request head must have arrived this long after the connection was accepted
EXCHANGE_SECONDS = 10.0  # and the whole exchange, answer included, must be over this long after it
MAX_HEAD_BYTES = 8192
WORKERS = 4
ACCEPT_BACKOFF_SECONDS = 0.1  # the listener's rest after an accept failed (EMFILE, ENFILE, ENOBUFS)
ACCEPT_LOG_SECONDS = 1.0  # at most one line about failed accepts this often
MAX_PENDING = 10_000  # connections whose head is still arriving; beyond it the oldest are closed

Route = Callable[[], tuple[int, bytes, str]]


class PortInUse(OSError):
    pass


@dataclass
class _Pending:
    """A connection whose request head is still arriving."""

    accepted: float
    received: int = 0  # bytes of the head so far: capped whatever the read pattern
    parser: h11.Connection = field(default_factory=lambda: h11.Connection(
        h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES))


class ProbeHTTPServer:
    def __init__(
        self, host: str, port: int, registry: CollectorRegistry | Any,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        extra_routes: dict[str, Route] | None = None,
    ) -> None:
        self.registry = registry
        self.health = health
        self.routes: dict[str, Route] = {"/metrics": self._metrics, **(extra_routes or {})}
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind((host, port))
            self._listener.listen(512)
        except OSError as exc:
            self._listener.close()
            raise PortInUse(exc.errno, exc.strerror or str(exc)) from exc
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._pending: dict[socket.socket, _Pending] = {}
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="metrics-http")
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._accept_paused_until = 0.0  # at the descriptor limit: the listener rests until then
        self._accept_logged_at = -ACCEPT_LOG_SECONDS
        self._accept_failures = 0  # since the last line about them

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="metrics-http-accept", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for conn in list(self._pending):
            self._close(conn)
        with contextlib.suppress(OSError):
            self._selector.close()
        self._listener.close()

    def _metrics(self) -> tuple[int, bytes, str]:
        return 200, generate_latest(self.registry), CONTENT_TYPE_LATEST

    # ---- the accept-and-read loop ----------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                events = self._selector.select(timeout=0.25)
            except OSError:
                return
            if self._accept_paused_until and time.monotonic() >= self._accept_paused_until:
                self._accept_paused_until = 0.0
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self._selector.register(self._listener, selectors.EVENT_READ)
            for key, _mask in events:
                sock = key.fileobj
                if sock is self._listener:
                    self._accept()
                else:
                    assert isinstance(sock, socket.socket)
                    try:
                        self._read_head(sock)
                    except Exception as exc:  # never let one client end the loop
                        log.warning("metrics endpoint request failed (%s)", type(exc).__name__)
                        self._close(sock)
            self._expire(time.monotonic())

    def _accept(self) -> None:
        for _ in range(256):  # drain the backlog in batches
            try:
                conn, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: rest the listener, keep serving what we have
                self._accept_failed(exc)
                return
            conn.setblocking(False)
            if len(self._pending) >= MAX_PENDING:
                oldest = min(self._pending, key=lambda c: self._pending[c].accepted)
                self._close(oldest)
            self._pending[conn] = _Pending(time.monotonic())
            self._selector.register(conn, selectors.EVENT_READ)

    def _accept_failed(self, exc: OSError) -> None:
        """At the file-descriptor limit the listener stays readable: accepting again at once would
        spin a core and print a line per try. It rests ``ACCEPT_BACKOFF_SECONDS`` (connections wait
        in the backlog meanwhile; expiring heads free descriptors), and the failures are logged at
        most once a second, with their count."""
        self._accept_failures += 1
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(self._listener)
        now = time.monotonic()
        self._accept_paused_until = now + ACCEPT_BACKOFF_SECONDS
        if now - self._accept_logged_at >= ACCEPT_LOG_SECONDS:
            log.error("metrics endpoint could not accept %d connection(s) (%s); retrying in %gs",
                      self._accept_failures, type(exc).__name__, ACCEPT_BACKOFF_SECONDS)
            self._accept_logged_at = now
            self._accept_failures = 0

    def _read_head(self, conn: socket.socket) -> None:
        pending = self._pending.get(conn)
        if pending is None:
            return
        try:
            data = conn.recv(MAX_HEAD_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        pending.received += len(data)
        pending.parser.receive_data(data)
        try:
            event = pending.parser.next_event()
        except h11.RemoteProtocolError:
            self._answer_now(conn, 400, b"bad request\n", "text/plain")
            return
        if event is h11.NEED_DATA:
            if not data:  # closed before a whole head
                self._close(conn)
            return
        if not isinstance(event, h11.Request):
            self._close(conn)
            return
        if pending.received - len(pending.parser.trailing_data[0]) > MAX_HEAD_BYTES:
            # h11 caps a head only while it waits for more; one that arrived whole is measured here.
            self._answer_now(conn, 431, b"request header fields too large\n", "text/plain")
            return
        path = event.target.decode("ascii", "replace").split("?", 1)[0]
        if event.method not in (b"GET", b"HEAD"):
            self._answer_now(conn, 405, b"method not allowed\n", "text/plain")
        elif path == "/" and "/status" in self.routes:
            # An operator who types the host lands on the status page.
            self._answer_now(conn, 302, b"see /status\n", "text/plain", head_only=event.method == b"HEAD",
                             headers={"Location": "/status"})
        elif path == "/healthz":
            ok, detail = self.health()
            self._answer_now(conn, 200 if ok else 503, json.dumps(detail).encode(), "application/json",
                             head_only=event.method == b"HEAD")
        else:
            self._forget(conn)
            deadline = pending.accepted + EXCHANGE_SECONDS
            try:
                self._pool.submit(self._serve, conn, path, deadline, event.method == b"HEAD")
            except RuntimeError:  # shutting down
                conn.close()

    def _answer_now(self, conn: socket.socket, status: int, body: bytes, content_type: str, *,
                    head_only: bool = False, headers: dict[str, str] | None = None) -> None:
        """A small answer from the loop itself: one non-blocking send, never a wait on the client."""
        self._forget(conn)
        with contextlib.suppress(OSError):
            conn.send(_response(status, body, content_type, head_only=head_only, headers=headers))
        with contextlib.suppress(OSError):
            conn.close()

    def _expire(self, now: float) -> None:
        for conn, pending in list(self._pending.items()):
            if now - pending.accepted > HEAD_SECONDS:
                self._close(conn)

    def _forget(self, conn: socket.socket) -> None:
        self._pending.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn)

    def _close(self, conn: socket.socket) -> None:
        self._forget(conn)
        with contextlib.suppress(OSError):
            conn.close()

    # ---- one routed request, on a worker -----------------------------------------------------
    def _serve(self, conn: socket.socket, path: str, deadline: float, head_only: bool) -> None:
        try:
            if time.monotonic() >= deadline:
                return  # queued past its exchange bound: the client has been waiting too long
            route = self.routes.get(path)
            status, body, content_type = route() if route else (404, b"not found\n", "text/plain")
            data = _response(status, body, content_type, head_only=head_only)
            conn.setblocking(True)
            sent = 0
            while sent < len(data):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("answer not taken within the exchange bound")
                conn.settimeout(left)
                sent += conn.send(data[sent:sent + 65536])
        except Exception as exc:  # a reset, a timeout, a bug: one JSON line, never a traceback
            log.warning("metrics endpoint request failed (%s)", type(exc).__name__)
        finally:
            with contextlib.suppress(OSError):
                conn.close()


def _response(status: int, body: bytes, content_type: str, *, head_only: bool = False,
              headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: {content_type}\r\n"
            f"{extra}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode("ascii")
    return head if head_only else head + body


_REASONS = {200: "OK", 302: "Found", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}
