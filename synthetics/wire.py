"""One HTTP/1.1 exchange on a raw socket, under one deadline, timed phase by phase.

Why not requests: its timeout is per read, so a server that trickles its status line a byte
a second resets it forever, and its clock runs around the library, not at the socket. Here,
as in blackbox_exporter (one ``context.WithTimeout`` per probe, ``httptrace`` phases), a
monotonic deadline is created once per exchange and every blocking call (resolve, connect,
handshake, send, each read) gets only what is left of it. Phases are measured where they
happen: ``resolve`` (getaddrinfo), ``connect`` (TCP), ``tls`` (handshake), ``processing``
(request sent → first response byte), ``transfer`` (first → last body byte).

The protocol itself is h11's (sans-IO, RFC 9112-strict): it frames the request, refuses to
send a header value with CR/LF/NUL, and refuses conflicting or invalid lengths, bad chunks and
bad status lines in the answer (``protocol_error``). We keep what h11 does not do: the socket,
the deadline, the phases, the body cap and TLS. Redirects are never followed (the caller sees
the 3xx), no proxy is consulted, and a body over the cap ends the exchange. One connection per
exchange (``Connection: close``).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import selectors
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import h11

from synthetics import reasons

PHASES = ("resolve", "connect", "tls", "processing", "transfer")
MAX_HEADER_BYTES = 64 * 1024  # status line and headers together (h11's event size cap)
RECV_BYTES = 64 * 1024
MAX_INTERIM_RESPONSES = 8  # 100 Continue, 103 Early Hints: a handful, never a storm
CPU_SECONDS = 1.0  # of this thread's CPU for one answer's framing, whatever the peer sends


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
            raise WireError(reasons.TIMEOUT, f"{what}: no answer within {self.seconds:g}s", phases)
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
            raise WireError(reasons.BAD_URL, "not an absolute http(s) URL")
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
            except (OSError, UnicodeError) as exc:  # UnicodeError: a label the IDNA codec refuses
                box["error"] = exc

        worker = threading.Thread(target=lookup, name="probe-resolve", daemon=True)
        worker.start()
        worker.join(deadline.remaining("resolve", phases))
        if worker.is_alive():
            phases["resolve"] = time.perf_counter() - started
            raise WireError(reasons.TIMEOUT, f"DNS lookup of the host took over {deadline.seconds:g}s", phases)
        if "error" in box:
            phases["resolve"] = time.perf_counter() - started
            raise WireError(reasons.CONNECTION_ERROR, "DNS lookup failed", phases)
        infos = box.get("infos") or []
        if not infos:
            phases["resolve"] = time.perf_counter() - started
            raise WireError(reasons.CONNECTION_ERROR, "DNS lookup returned no address", phases)
    phases["resolve"] = time.perf_counter() - started
    return infos


HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's "Connection Attempt Delay": the next address starts this soon
_IN_PROGRESS = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EALREADY)


def _interleaved(infos: list[Any]) -> list[Any]:
    """Addresses in RFC 8305 order: the resolver's first family first, then alternating families,
    so one dead family (a broken IPv6 path) costs one attempt delay, not every address of it."""
    if not infos:
        return []
    first = infos[0][0]
    ours = [info for info in infos if info[0] == first]
    others = [info for info in infos if info[0] != first]
    order: list[Any] = []
    while ours or others:
        if ours:
            order.append(ours.pop(0))
        if others:
            order.append(others.pop(0))
    return order


def _connect(infos: list[Any], deadline: Deadline, phases: dict[str, float]) -> socket.socket:
    """Happy Eyeballs (RFC 8305) within the one deadline: each address in turn, the next one started
    at most ``HAPPY_EYEBALLS_DELAY`` after the previous (at once when it fails), the first to
    connect wins and the rest are closed. One address that black-holes is not an outage."""
    started = time.perf_counter()
    waiting = _interleaved(infos)
    attempts: list[socket.socket] = []
    problem: OSError | None = None
    next_start = 0.0
    selector = selectors.DefaultSelector()
    winner: socket.socket | None = None
    try:
        while winner is None:
            if waiting and (not attempts or time.monotonic() >= next_start):
                family, kind, proto, _name, address = waiting.pop(0)
                try:
                    sock = socket.socket(family, kind, proto)
                except OSError as exc:
                    problem = exc
                    continue
                sock.setblocking(False)
                code = sock.connect_ex(address)
                if code == 0:
                    winner = sock
                    break
                if code in _IN_PROGRESS:
                    selector.register(sock, selectors.EVENT_WRITE)
                    attempts.append(sock)
                    next_start = time.monotonic() + HAPPY_EYEBALLS_DELAY
                else:
                    sock.close()
                    problem = OSError(code, os.strerror(code))
                continue
            if not attempts:
                phases["connect"] = time.perf_counter() - started
                refused = isinstance(problem, ConnectionRefusedError) or getattr(problem, "errno", None) == \
                    errno.ECONNREFUSED
                raise WireError(reasons.CONNECTION_ERROR, "Connection refused" if refused else type(problem).__name__,
                                phases)
            left = deadline.end - time.monotonic()
            if left <= 0:
                phases["connect"] = time.perf_counter() - started
                raise WireError(reasons.TIMEOUT, f"TCP connect took over {deadline.seconds:g}s", phases)
            wait = min(left, max(0.0, next_start - time.monotonic())) if waiting else left
            for key, _mask in selector.select(wait):
                sock = key.fileobj  # type: ignore[assignment]
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                selector.unregister(sock)
                attempts.remove(sock)
                if code == 0:
                    winner = sock
                    break
                sock.close()
                problem = OSError(code, os.strerror(code))
                next_start = 0.0  # a failed attempt starts the next address at once
    finally:
        for sock in attempts:
            if sock is not winner:
                sock.close()
        selector.close()
    winner.setblocking(True)
    winner.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    phases["connect"] = time.perf_counter() - started
    return winner


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
        raise WireError(reasons.TIMEOUT, f"TLS handshake took over {deadline.seconds:g}s", phases) from None
    except ssl.SSLError as exc:
        sock.close()
        phases["tls"] = time.perf_counter() - started
        raise WireError(reasons.tls_error(tls_cause(exc)), "TLS handshake failed", phases) from None
    except OSError as exc:
        sock.close()
        phases["tls"] = time.perf_counter() - started
        raise WireError(reasons.CONNECTION_ERROR, f"TLS handshake: {type(exc).__name__}", phases) from None
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
    """Reads off the socket, each bounded by what is left of the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline, phases: dict[str, float]) -> None:
        self.sock = sock
        self.deadline = deadline
        self.phases = phases
        self.first_byte_at: float | None = None
        self.received = 0  # bytes read off the socket so far
        self.cpu_started = time.thread_time()

    def check_cpu(self, what: str) -> None:
        """A response's framing may cost at most ``CPU_SECONDS`` of this thread's CPU: a body in
        1-byte chunks or a storm of 1xx answers is a ``protocol_error`` at once, not a core burnt
        until the deadline."""
        if time.thread_time() - self.cpu_started > CPU_SECONDS:
            raise WireError(reasons.PROTOCOL_ERROR, f"{what}: the answer's framing costs over {CPU_SECONDS:g}s of CPU",
                            self.phases, answered=self.first_byte_at is not None)

    def read(self, what: str) -> bytes:
        """One read; ``b""`` at the end of the stream."""
        answered = self.first_byte_at is not None
        try:
            self.sock.settimeout(self.deadline.remaining(what, self.phases))
            data = self.sock.recv(RECV_BYTES)
        except TimeoutError:
            raise WireError(reasons.TIMEOUT, f"{what}: not complete within {self.deadline.seconds:g}s",
                            self.phases, answered=answered) from None
        except ssl.SSLError as exc:
            raise WireError(reasons.tls_error(tls_cause(exc)), f"{what}: TLS failure", self.phases,
                            answered=answered) from None
        except OSError as exc:
            raise WireError(reasons.CONNECTION_ERROR, f"{what}: {type(exc).__name__}", self.phases,
                            answered=answered) from None
        except WireError as exc:
            exc.answered = answered
            raise
        if self.first_byte_at is None and data:
            self.first_byte_at = time.perf_counter()
        self.received += len(data)
        return data


class HeadRejected(WireError):
    """The caller's ``on_head`` judged the status line and refused to wait for the body."""

    def __init__(self, cause: BaseException, phases: dict[str, float]) -> None:
        # The caller unwraps ``cause`` and raises it as it was: nothing is swallowed here.
        super().__init__("judged", "the status line decided the exchange", phases, answered=True)
        self.cause = cause


HeadJudge = Callable[[int, Mapping[str, str]], None]
"""Told the status and headers as soon as they arrive; raising ends the exchange there."""


def _headers_of(event: h11.Response | h11.InformationalResponse) -> dict[str, str]:
    """h11's headers (names lower-cased by h11) as one comma-joined value per name."""
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key = name.decode("ascii")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _receive(conn: h11.Connection, reader: _Reader, what: str) -> Any:
    """The next h11 event, reading from the socket as long as h11 needs data."""
    while True:
        reader.check_cpu(what)
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise WireError(reasons.PROTOCOL_ERROR, f"{what}: {_h11_detail(exc)}", reader.phases,
                            answered=reader.first_byte_at is not None) from None
        if event is not h11.NEED_DATA:
            return event
        data = reader.read(what)
        if not data and conn.their_state is h11.SEND_RESPONSE and reader.first_byte_at is None:
            raise WireError(reasons.CONNECTION_ERROR, f"{what}: connection closed before an answer", reader.phases)
        conn.receive_data(data)


def _h11_detail(exc: h11.ProtocolError) -> str:
    """h11's message, cut short: it can quote the peer's bytes, which may be long."""
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _consumed(conn: h11.Connection, reader: _Reader) -> int:
    """Bytes h11 has parsed so far (read off the socket, less what it still holds unparsed)."""
    return reader.received - len(conn.trailing_data[0])


def _read_response(conn: h11.Connection, reader: _Reader, cap: int,
                   on_head: HeadJudge | None) -> tuple[int, dict[str, str], bytes]:
    interim = 0
    head_from = 0
    while True:
        event = _receive(conn, reader, "status line and headers")
        if isinstance(event, h11.InformationalResponse | h11.Response):
            # h11 caps a head only while it waits for more of it: one that arrives whole is
            # measured here, so the 64 KiB cap holds whatever the read pattern (SPEC 10).
            head_to = _consumed(conn, reader)
            if head_to - head_from > MAX_HEADER_BYTES:
                raise WireError(reasons.PROTOCOL_ERROR, f"status line and headers: over {MAX_HEADER_BYTES} bytes",
                                reader.phases, answered=True)
            head_from = head_to
        if getattr(event, "http_version", b"1.1")[:2] != b"1.":
            raise WireError(reasons.PROTOCOL_ERROR, "status line: not HTTP/1.x", reader.phases, answered=True)
        if isinstance(event, h11.Response):
            break
        if isinstance(event, h11.ConnectionClosed):
            raise WireError(reasons.CONNECTION_ERROR, "connection closed before an answer", reader.phases,
                            answered=reader.first_byte_at is not None)
        # InformationalResponse (1xx): the real answer follows, after a few at most.
        interim += 1
        if interim > MAX_INTERIM_RESPONSES:
            raise WireError(reasons.PROTOCOL_ERROR,
                            f"over {MAX_INTERIM_RESPONSES} interim (1xx) responses", reader.phases,
                            answered=True)
    status, headers = event.status_code, _headers_of(event)
    if "content-length" in headers and "transfer-encoding" in headers:
        # RFC 9112 6.3: a sender must not send both; a request-smuggling shape, never trusted.
        raise WireError(reasons.PROTOCOL_ERROR,
                        "both Content-Length and Transfer-Encoding", reader.phases, answered=True)
    if on_head is not None:
        try:
            on_head(status, headers)
        except BaseException as exc:  # a leg's failure is a BaseException (pytest's OutcomeException)
            raise HeadRejected(exc, reader.phases) from None
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cap:
        raise WireError(reasons.BODY_TOO_LARGE, f"body exceeds {cap} bytes", reader.phases, answered=True)
    chunks: list[bytes] = []
    size = 0
    while True:
        event = _receive(conn, reader, "body")
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > cap:
                raise WireError(reasons.BODY_TOO_LARGE, f"body exceeds {cap} bytes", reader.phases, answered=True)
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return status, headers, b"".join(chunks)
        else:  # ConnectionClosed mid-body: h11 already refuses a short Content-Length or chunk
            raise WireError(reasons.CONNECTION_ERROR, "body: connection closed early", reader.phases, answered=True)


def _decode(body: bytes, encoding: str, cap: int, phases: dict[str, float]) -> bytes:
    """Undo one gzip/deflate layer (we ask for identity), never inflating past the cap.

    A stream the decompressor did not see the end of (a body cut after a sync flush) is
    ``protocol_error``, as is a second layer or bytes after the end: a truncated answer must
    never decode as a complete one.
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise WireError(reasons.PROTOCOL_ERROR, f"unsupported Content-Encoding {encoding[:20]!r}", phases,
                        answered=True)
    wbits = 31 if "gzip" in encoding else 15
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(body, cap + 1)
    except zlib.error:
        raise WireError(reasons.PROTOCOL_ERROR, "bad compressed body", phases, answered=True) from None
    if len(out) > cap:
        raise WireError(reasons.BODY_TOO_LARGE, f"decoded body exceeds {cap} bytes", phases, answered=True)
    if not inflater.eof or inflater.unused_data:
        raise WireError(reasons.PROTOCOL_ERROR, "truncated or trailing compressed body", phases, answered=True)
    return out


def _request_bytes(conn: h11.Connection, method: str, target: Target, path: str,
                   headers: Mapping[str, str], body: bytes | None,
                   phases: dict[str, float]) -> bytes:
    """The request as h11 frames it: a header value with CR, LF or NUL is never sent."""
    fields = [("Host", target.host_header), ("Connection", "close"), *headers.items()]
    if body is not None:
        fields.append(("Content-Length", str(len(body))))
    try:
        encoded = [(name.encode("ascii"), value.encode("ascii")) for name, value in fields]
        data = conn.send(h11.Request(method=method, target=path.encode("ascii"), headers=encoded)) or b""
        if body:
            data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
    except (UnicodeEncodeError, h11.LocalProtocolError):
        raise WireError(reasons.INVALID_REQUEST, "a header or the path is not valid HTTP; not sent", phases) from None
    return data


def exchange(
    method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None,
    timeout: float, context: ssl.SSLContext | None = None, max_body: int = 1024 * 1024,
    on_head: HeadJudge | None = None,
) -> WireResponse:
    """Send one request and read its whole answer within ``timeout`` seconds in total.

    Framing is h11's (RFC 9112, strict): the socket, the deadline, the phases and the caps are
    ours. ``on_head`` sees the status before any body byte is waited for.
    """
    deadline = Deadline(timeout)
    parts = urlsplit(url)
    conn = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = _request_bytes(conn, method, Target.of(url), target, headers, body, {})
    sock, _target, phases = open_connection(url, timeout, context, deadline)
    try:
        sent_at = time.perf_counter()
        try:
            sock.settimeout(deadline.remaining("send", phases))
            sock.sendall(request)
        except TimeoutError:
            raise WireError(reasons.TIMEOUT, f"request not sent within {timeout:g}s", phases) from None
        except OSError as exc:
            raise WireError(reasons.CONNECTION_ERROR, f"send: {type(exc).__name__}", phases) from None
        reader = _Reader(sock, deadline, phases)
        try:
            status, response_headers, raw = _read_response(conn, reader, max_body, on_head)
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
