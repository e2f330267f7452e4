"""Real loopback HTTP receivers the tests own: an event collector and a connection counter."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class EventCollector(ThreadingHTTPServer):
    """Stands in for the New Relic Event API: records gunzipped JSON bodies, answers ``status``."""

    daemon_threads = True

    def __init__(self, status: int = 200, hang_seconds: float = 0.0) -> None:
        self.status = status
        self.hang_seconds = hang_seconds
        self.posts: list[dict[str, Any]] = []
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), _CollectorHandler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/accounts/1234567/events"

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for post in self.posts for event in post["events"]]

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _CollectorHandler(BaseHTTPRequestHandler):
    server: EventCollector

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
        self.server.posts.append({"headers": dict(self.headers.items()), "raw": raw,
                                  "events": json.loads(body)})
        if self.server.hang_seconds:
            self.server.release.wait(self.server.hang_seconds)
        payload = b'{"success":true}'
        try:
            self.send_response(self.server.status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the sender gave up first, as it should


class ConnectionCounter:
    """A TCP listener that only counts connections: proof that nothing talked to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.count = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.count += 1
            conn.close()

    def stop(self) -> None:
        """Stop, then count what still waits in the accept backlog: no connection can escape."""
        self._stop.set()
        self.thread.join(2)
        self.sock.setblocking(False)
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                break
            self.count += 1
            conn.close()
        self.sock.close()


class PushGateway(ThreadingHTTPServer):
    """Stands in for a Prometheus Pushgateway: records each PUT's path and exposition body."""

    daemon_threads = True

    def __init__(self) -> None:
        self.pushes: list[tuple[str, str]] = []
        super().__init__(("127.0.0.1", 0), _PushHandler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _PushHandler(BaseHTTPRequestHandler):
    server: PushGateway

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.server.pushes.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
