"""``/metrics`` (Prometheus exposition) and ``/healthz`` (is the loop alive and ticking?).

A monitor's own endpoint must not be the thing that silences it: a thread per connection
(``ThreadingHTTPServer``) lets a flood of idle connections pin thousands of threads forever.
Here one thread accepts and watches connections with a selector; a connection reaches one of
a few worker threads only once its request has started to arrive, an idle one is closed after
``IDLE_SECONDS``, and a worker's reads and writes are bounded by ``HANDLER_SECONDS``. A handler
error is one JSON log line, never a raw traceback on stderr.
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
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger("payment_probe.http")

IDLE_SECONDS = 10.0  # a connection that sends nothing for this long is closed
HANDLER_SECONDS = 5.0  # socket timeout while a worker reads a request or writes an answer
WORKERS = 4
MAX_PENDING = 10_000  # idle connections kept at most; beyond it the oldest are closed


class PortInUse(OSError):
    pass


class ProbeHTTPServer:
    def __init__(
        self, host: str, port: int, registry: CollectorRegistry,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        extra_routes: dict[str, Callable[[], tuple[int, bytes, str]]] | None = None,
    ) -> None:
        self.registry = registry
        self.health = health
        self.routes = dict(extra_routes or {})
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
        self._pending: dict[socket.socket, float] = {}  # accepted, waiting for a first byte
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="metrics-http")
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

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

    # ---- the accept loop -------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                events = self._selector.select(timeout=0.5)
            except OSError:
                return
            for key, _mask in events:
                sock = key.fileobj
                if sock is self._listener:
                    self._accept()
                else:
                    assert isinstance(sock, socket.socket)
                    self._dispatch(sock)
            self._expire(time.monotonic())

    def _accept(self) -> None:
        for _ in range(256):  # drain the backlog in batches
            try:
                conn, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: log, keep serving what we have
                log.error("metrics endpoint could not accept a connection (%s)", type(exc).__name__)
                return
            conn.setblocking(False)
            if len(self._pending) >= MAX_PENDING:
                oldest = min(self._pending, key=self._pending.__getitem__)
                self._close(oldest)
            self._pending[conn] = time.monotonic()
            self._selector.register(conn, selectors.EVENT_READ)

    def _dispatch(self, conn: socket.socket) -> None:
        self._pending.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn)
        try:
            self._pool.submit(self._serve, conn)
        except RuntimeError:  # shutting down
            conn.close()

    def _expire(self, now: float) -> None:
        for conn, since in list(self._pending.items()):
            if now - since > IDLE_SECONDS:
                self._close(conn)

    def _close(self, conn: socket.socket) -> None:
        self._pending.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn)
        with contextlib.suppress(OSError):
            conn.close()

    # ---- one request -----------------------------------------------------------------------
    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(HANDLER_SECONDS)
            _Handler(conn, conn.getpeername(), self)  # type: ignore[arg-type]  # reads .registry, .health
        except Exception as exc:  # a reset, a timeout, a bug: one JSON line, never a traceback
            log.warning("metrics endpoint request failed (%s)", type(exc).__name__)
        finally:
            with contextlib.suppress(OSError):
                conn.close()


class _Handler(BaseHTTPRequestHandler):
    server: ProbeHTTPServer  # type: ignore[assignment]
    timeout = HANDLER_SECONDS

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def log_error(self, format: str, *args: Any) -> None:
        log.warning("metrics endpoint: %s", (format % args)[:200])

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            ok, detail = self.server.health()
            self._send(200 if ok else 503, json.dumps(detail).encode(), "application/json")
        elif path in self.server.routes:
            status, body, content_type = self.server.routes[path]()
            self._send(status, body, content_type)
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True
