"""The hand-written HTTP/1.1 client payment-probe used before h11 (synthetics/wire.py at 3d60be5).

Kept only as the baseline of ``make bench``'s parser step: the same exchanges through it and
through today's h11 framing, CPU per exchange measured in one invocation. Never imported
by the runtime.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

PHASES = ("resolve", "connect", "tls", "processing", "transfer")
MAX_HEADER_BYTES = 64 * 1024
RECV_BYTES = 64 * 1024


class WireError(Exception):
    """The exchange ended without a usable answer. ``kind`` is a reason token; no URL, no secret."""

    def __init__(self, kind: str, detail: str, phases: Mapping[str, float] | None = None,
                 *, answered: bool = False) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        # The caller's dict itself: phases still being closed (processing, transfer) land in it.
        self.phases: dict[str, float] = phases if isinstance(phases, dict) else dict(phases or {})
        self.answered = answered  # the first response byte had arrived before it ended


@dataclass
class Deadline:
    """A monotonic end time; ``remaining()`` raises ``WireError('timeout')`` once it has passed."""

    seconds: float
    end: float = field(init=False)

    def __post_init__(self) -> None:
        self.end = time.monotonic() + self.seconds

    def remaining(self, what: str, phases: Mapping[str, float] | None = None) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise WireError("timeout", f"{what}: no answer within {self.seconds:g}s", phases)
        return left


@dataclass(frozen=True)
class WireResponse:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    phases: Mapping[str, float]
    peer_certificate: Mapping[str, Any] | None = None

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    host_header: str

    @classmethod
    def of(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WireError("bad_url", "not an absolute http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        default = (parts.scheme == "https" and port == 443) or (parts.scheme == "http" and port == 80)
        return cls(parts.scheme, host, port, shown if default else f"{shown}:{port}")


def tls_cause(exc: BaseException) -> str:
    """A short, stable cause for a TLS failure: untrusted, hostname_mismatch, expired, ..."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = getattr(exc, "verify_code", None)
        if code == 10:
            return "expired"
        if code == 9:
            return "not_yet_valid"
        if code in (62, 64):
            return "hostname_mismatch"
        if code in (2, 18, 19, 20, 21, 27):
            return "untrusted"
        return "verify_failed"
    reason = (getattr(exc, "reason", None) or "").upper()
    if "CERTIFICATE_REQUIRED" in reason or ("HANDSHAKE_FAILURE" in reason and "ALERT" in reason):
        return "client_certificate_rejected"
    if "UNKNOWN_CA" in reason or "BAD_CERTIFICATE" in reason:
        return "client_certificate_rejected"
    if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason:
        return "not_tls"
    return "handshake"


def _resolve(target: Target, deadline: Deadline, phases: dict[str, float]) -> list[Any]:
    started = time.perf_counter()
    try:
        ipaddress.ip_address(target.host)
        literal = True
    except ValueError:
        literal = False
    if literal:
        family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
        infos = [(family, socket.SOCK_STREAM, 0, "", (target.host, target.port))]
    else:
        # getaddrinfo has no timeout of its own: run it aside and stop waiting at the deadline.
        box: dict[str, Any] = {}

        def lookup() -> None:
            try:
                box["infos"] = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            except OSError as exc:
                box["error"] = exc

        worker = threading.Thread(target=lookup, name="probe-resolve", daemon=True)
        worker.start()
        worker.join(deadline.remaining("resolve", phases))
        if worker.is_alive():
            phases["resolve"] = time.perf_counter() - started
            raise WireError("timeout", f"DNS lookup of the host took over {deadline.seconds:g}s", phases)
        if "error" in box:
            phases["resolve"] = time.perf_counter() - started
            raise WireError("connection_error", "DNS lookup failed", phases)
        infos = box["infos"]
    phases["resolve"] = time.perf_counter() - started
    return infos


def _connect(infos: list[Any], deadline: Deadline, phases: dict[str, float]) -> socket.socket:
    started = time.perf_counter()
    problem: Exception | None = None
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.remaining("connect", phases))
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            phases["connect"] = time.perf_counter() - started
            return sock
        except TimeoutError:
            sock.close()
            phases["connect"] = time.perf_counter() - started
            raise WireError("timeout", f"TCP connect took over {deadline.seconds:g}s", phases) from None
        except OSError as exc:
            sock.close()
            problem = exc
        except WireError:
            sock.close()
            raise
    phases["connect"] = time.perf_counter() - started
    text = "Connection refused" if isinstance(problem, ConnectionRefusedError) else type(problem).__name__
    raise WireError("connection_error", text, phases)


def _handshake(sock: socket.socket, target: Target, context: ssl.SSLContext, deadline: Deadline,
               phases: dict[str, float]) -> ssl.SSLSocket:
    started = time.perf_counter()
    try:
        tls = context.wrap_socket(sock, server_hostname=target.host, do_handshake_on_connect=False)
        tls.settimeout(deadline.remaining("tls", phases))
        tls.do_handshake()
    except TimeoutError:
        sock.close()
        phases["tls"] = time.perf_counter() - started
        raise WireError("timeout", f"TLS handshake took over {deadline.seconds:g}s", phases) from None
    except ssl.SSLError as exc:
        sock.close()
        phases["tls"] = time.perf_counter() - started
        raise WireError(f"tls_error:{tls_cause(exc)}", "TLS handshake failed", phases) from None
    except OSError as exc:
        sock.close()
        phases["tls"] = time.perf_counter() - started
        raise WireError("connection_error", f"TLS handshake: {type(exc).__name__}", phases) from None
    phases["tls"] = time.perf_counter() - started
    return tls


def open_connection(url: str, timeout: float, context: ssl.SSLContext | None,
                    deadline: Deadline | None = None) -> tuple[socket.socket, Target, dict[str, float]]:
    """Resolve, connect and (for https) handshake within the deadline; phases so far."""
    target = Target.of(url)
    deadline = deadline or Deadline(timeout)
    phases = dict.fromkeys(PHASES, 0.0)
    infos = _resolve(target, deadline, phases)
    sock = _connect(infos, deadline, phases)
    if target.scheme == "https":
        sock = _handshake(sock, target, context or ssl.create_default_context(), deadline, phases)
    return sock, target, phases


class _Reader:
    """Buffered reads off the socket, each bounded by what is left of the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline, phases: dict[str, float]) -> None:
        self.sock = sock
        self.deadline = deadline
        self.phases = phases
        self.buffer = b""
        self.first_byte_at: float | None = None
        self.eof = False

    def fill(self, what: str) -> bool:
        """Read once more; False at the end of the stream."""
        if self.eof:
            return False
        try:
            self.sock.settimeout(self.deadline.remaining(what, self.phases))
            data = self.sock.recv(RECV_BYTES)
        except TimeoutError:
            raise WireError("timeout", f"{what}: not complete within {self.deadline.seconds:g}s",
                            self.phases, answered=self.first_byte_at is not None) from None
        except ssl.SSLError as exc:
            raise WireError(f"tls_error:{tls_cause(exc)}", f"{what}: TLS failure", self.phases,
                            answered=self.first_byte_at is not None) from None
        except OSError as exc:
            raise WireError("connection_error", f"{what}: {type(exc).__name__}", self.phases,
                            answered=self.first_byte_at is not None) from None
        if self.first_byte_at is None and data:
            self.first_byte_at = time.perf_counter()
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def until(self, marker: bytes, limit: int, what: str) -> bytes:
        while marker not in self.buffer:
            if len(self.buffer) > limit:
                raise WireError("protocol_error", f"{what}: over {limit} bytes", self.phases, answered=True)
            if not self.fill(what):
                raise WireError("connection_error", f"{what}: connection closed early", self.phases,
                                answered=self.first_byte_at is not None)
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def exactly(self, size: int, what: str) -> bytes:
        while len(self.buffer) < size:
            if not self.fill(what):
                raise WireError("connection_error", f"{what}: connection closed early", self.phases,
                                answered=True)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def _parse_head(head: bytes, phases: dict[str, float]) -> tuple[int, dict[str, str]]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise WireError("protocol_error", "not an HTTP status line", phases, answered=True)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        key = name.strip().decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return int(parts[1]), headers


def _read_body(reader: _Reader, status: int, method: str, headers: Mapping[str, str],
               cap: int) -> bytes:
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return b""
    chunks: list[bytes] = []
    size = 0

    def keep(data: bytes) -> None:
        nonlocal size
        size += len(data)
        if size > cap:
            raise WireError("body_too_large", f"body exceeds {cap} bytes", reader.phases, answered=True)
        chunks.append(data)

    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            line = reader.until(b"\r\n", 1024, "chunk size")
            try:
                length = int(line.split(b";", 1)[0].strip() or b"x", 16)
            except ValueError:
                raise WireError("protocol_error", "bad chunk size", reader.phases, answered=True) from None
            if length == 0:
                return b"".join(chunks)  # trailers are not read: the connection closes anyway
            if size + length > cap:
                raise WireError("body_too_large", f"body exceeds {cap} bytes", reader.phases, answered=True)
            keep(reader.exactly(length, "body"))
            reader.exactly(2, "body")
    length_text = headers.get("content-length")
    if length_text is not None:
        try:
            length = int(length_text.split(",")[0])
        except ValueError:
            raise WireError("protocol_error", "bad Content-Length", reader.phases, answered=True) from None
        if length > cap:
            raise WireError("body_too_large", f"body exceeds {cap} bytes", reader.phases, answered=True)
        return reader.exactly(length, "body")
    keep(reader.buffer)
    reader.buffer = b""
    while reader.fill("body"):  # close-delimited
        keep(reader.buffer)
        reader.buffer = b""
    return b"".join(chunks)


def _decode(body: bytes, encoding: str, cap: int, phases: dict[str, float]) -> bytes:
    """Undo one gzip/deflate layer (we ask for identity), never inflating past the cap."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise WireError("protocol_error", f"unsupported Content-Encoding {encoding[:20]!r}", phases,
                        answered=True)
    wbits = 31 if "gzip" in encoding else 15
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(body, cap + 1)
    except zlib.error:
        raise WireError("protocol_error", "bad compressed body", phases, answered=True) from None
    if len(out) > cap:
        raise WireError("body_too_large", f"decoded body exceeds {cap} bytes", phases, answered=True)
    return out


def exchange(
    method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None,
    timeout: float, context: ssl.SSLContext | None = None, max_body: int = 1024 * 1024,
) -> WireResponse:
    """Send one request and read its whole answer within ``timeout`` seconds in total."""
    deadline = Deadline(timeout)
    sock, target, phases = open_connection(url, timeout, context, deadline)
    try:
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {path} HTTP/1.1", f"Host: {target.host_header}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        sent_at = time.perf_counter()
        try:
            sock.settimeout(deadline.remaining("send", phases))
            sock.sendall(request)
        except TimeoutError:
            raise WireError("timeout", f"request not sent within {timeout:g}s", phases) from None
        except OSError as exc:
            raise WireError("connection_error", f"send: {type(exc).__name__}", phases) from None
        reader = _Reader(sock, deadline, phases)
        try:
            while True:
                head = reader.until(b"\r\n\r\n", MAX_HEADER_BYTES, "status line and headers")
                status, response_headers = _parse_head(head, phases)
                if status >= 200 or status == 101:
                    break
            raw = _read_body(reader, status, method, response_headers, max_body)
        finally:
            # Where it stopped, even on a timeout: processing up to the first byte, transfer after it.
            ended = time.perf_counter()
            first = reader.first_byte_at
            phases["processing"] = (first or ended) - sent_at
            phases["transfer"] = ended - first if first is not None else 0.0
        payload = _decode(raw, response_headers.get("content-encoding", ""), max_body, phases)
        cert = sock.getpeercert() if isinstance(sock, ssl.SSLSocket) else None
        return WireResponse(status, response_headers, payload, phases, cert)
    finally:
        sock.close()
