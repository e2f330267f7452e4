"""Every Postgres connection the prober opens: bounded waits, and outage told from misconfiguration.

Bounds (SPEC section 10): connect ≤ 5 s (libpq's ``connect_timeout``), each statement ≤ 5 s
on the server (``statement_timeout``), and on the client a guard that ends any wait on a
database that stopped answering without closing its socket (a frozen NAT, a paused VM): TCP
keepalives and ``tcp_user_timeout`` catch a dead peer whose kernel stops acknowledging, and
``guard`` shuts the socket down when a unit of work outlives its budget, which also catches a
peer whose kernel still acknowledges (a stalled proxy). Either way the waiting call raises a
connection error, and the caller treats it exactly like a database that is down.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from synthetics.secret import Secret

CONNECT_TIMEOUT_SECONDS = 5
STATEMENT_TIMEOUT_MS = 5000
GUARD_SECONDS = 15.0  # SPEC: a silent database is detected within 15 s

# SQLSTATE classes a retry cannot fix: access rules, data and integrity, authorization,
# a database or schema that does not exist. Anything else (no SQLSTATE: the connection) is an outage.
PERMANENT_CLASSES = frozenset({"42", "22", "23", "28", "3D", "3F", "0A"})


def connect(database_url: Secret, *, autocommit: bool = True, application_name: str = "payment-probe") -> Any:
    """A connection whose connect, statements and silent-peer detection are all bounded."""
    import psycopg  # optional dependency: imported only where the database is used

    return psycopg.connect(
        database_url.reveal(),
        autocommit=autocommit,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        application_name=application_name,
        keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
        tcp_user_timeout=int(GUARD_SECONDS * 1000) - 2000,
    )


def _shut(fileno: int) -> None:
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=fileno)
        try:
            sock.shutdown(socket.SHUT_RDWR)  # acts on the socket itself: the blocked wait sees EOF
        finally:
            sock.detach()


@contextlib.contextmanager
def guard(conn: Any, seconds: float = GUARD_SECONDS) -> Iterator[None]:
    """Bound a unit of work on ``conn``: past ``seconds`` its socket is shut and the wait raises."""
    try:
        fileno = conn.fileno()
    except Exception:
        yield  # already closed: whatever runs will raise at once
        return
    timer = threading.Timer(seconds, _shut, (fileno,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@contextlib.contextmanager
def session(database_url: Secret, *, autocommit: bool = True, budget: float = GUARD_SECONDS,
            application_name: str = "payment-probe") -> Iterator[Any]:
    """Connect, do a bounded unit of work, close: for the sweep, the audit flush, start-up checks."""
    conn = connect(database_url, autocommit=autocommit, application_name=application_name)
    try:
        with guard(conn, budget):
            yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def sqlstate(exc: BaseException) -> str | None:
    value = getattr(exc, "sqlstate", None)
    return value if isinstance(value, str) else None


def is_permanent(exc: BaseException) -> bool:
    """True for an error a retry cannot fix (privilege, missing table or column, wrong type)."""
    state = sqlstate(exc)
    return state is not None and state[:2] in PERMANENT_CLASSES


def describe(exc: BaseException) -> str:
    """One safe line: the SQLSTATE's name and the server's primary message (no URL, no password)."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = f"{type(exc).__name__}"
    if primary:
        text += f": {primary}"
    return text[:300]
