"""Grey-failure peers the drills own: a trickling HTTP server and a TCP proxy that can freeze.

Both are real sockets on loopback. The proxy keeps every socket open while frozen and
forwards nothing: to the prober it looks exactly like a NAT that dropped the flow, a
partitioned node or a paused VM (the kernel still ACKs, so only a client-side bound helps).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class LoopbackServer:
    """A listening socket on loopback that hands each accepted connection to ``_handle`` in a thread."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        self.sock.close()


class Trickler(LoopbackServer):
    """Accepts connections and sends ``payload`` one byte every ``every`` seconds, forever."""

    def __init__(self, payload: bytes, every: float = 0.5) -> None:
        self.payload = payload
        self.every = every
        super().__init__()

    def _handle(self, conn: socket.socket) -> None:
        self._trickle(conn)

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(1)
            with contextlib.suppress(OSError):
                conn.recv(65536)
            for index in range(10_000):
                if self.stopping.wait(self.every):
                    return
                try:
                    conn.sendall(self.payload[index % len(self.payload): index % len(self.payload) + 1])
                except OSError:
                    return

class FreezableProxy:
    """A loopback TCP proxy to ``upstream``; ``freeze()`` stops forwarding, ``thaw()`` resumes."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.frozen = threading.Event()
        self.thawed = threading.Event()
        self.thawed.set()
        self.stopping = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def freeze(self) -> None:
        self.thawed.clear()
        self.frozen.set()

    def thaw(self) -> None:
        self.frozen.clear()
        self.thawed.set()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self.thawed.wait()  # a frozen proxy accepts (the kernel does) but never reaches upstream
        if self.stopping.is_set():
            client.close()
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        self._pairs.append((client, upstream))
        peers = {client: upstream, upstream: client}
        try:
            while not self.stopping.is_set():
                if self.frozen.is_set():
                    self.thawed.wait(0.2)
                    continue
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def stop(self) -> None:
        self.stopping.set()
        self.thawed.set()
        self.sock.close()
        for a, b in self._pairs:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()
