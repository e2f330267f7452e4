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
# One trivial statement on a held session (a leadership check, a slot claim, one poll of a tier):
# a database that has not answered it in 5 s is out, and every second waited delays the HTTP legs.
STATEMENT_GUARD_SECONDS = 5.0

# SQLSTATE classes a retry cannot fix: access rules, data and integrity, authorization,
# a database or schema that does not exist. Anything else (no SQLSTATE: the connection) is an outage.
PERMANENT_CLASSES = frozenset({"42", "22", "23", "28", "3D", "3F", "0A"})


class DatabaseOut(ConnectionError):
    """This run already found the database out: the step is treated as the outage at once."""


class Outage:
    """One detection per run (SPEC section 10): after the first connection-level failure, every
    later database step of the run fails at once instead of waiting out a bound of its own.

    A frozen database costs each step its full bound (connect 5 s, a guarded statement 15 s);
    a run has five such steps (leadership, maintenance, sweep, mint, audit), so without this a
    run during a freeze took a minute and the HTTP legs ran twice in 90 s. The runner opens a
    scope per run (``one_detection``); the next run tries the database again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tripped = False
        self.scoped = False

    def trip(self) -> None:
        with self._lock:
            if self.scoped:  # outside a run every call is its own detection
                self.tripped = True

    @property
    def out(self) -> bool:
        """Inside a run that already found the database out."""
        return self.scoped and self.tripped

    @property
    def out_since_last_run(self) -> bool:
        """Between runs, after a run that found the database out: the next run tries it again."""
        return self.tripped and not self.scoped

    def reset(self) -> None:
        with self._lock:
            self.tripped = False


OUTAGE = Outage()


@contextlib.contextmanager
def one_detection() -> Iterator[None]:
    """A run's scope: the database is tried afresh at its start and found out at most once in it.
    A nested scope (the legs' pytest session inside the runner's slot) belongs to the outer one."""
    if OUTAGE.scoped:
        yield
        return
    OUTAGE.reset()
    OUTAGE.scoped = True
    try:
        yield
    finally:
        OUTAGE.scoped = False


def is_connection_failure(exc: BaseException) -> bool:
    """A connection-level failure (refused, cut by the guard, timed out), not a refusal by rule."""
    if isinstance(exc, DatabaseOut):
        return True
    import psycopg

    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    state = sqlstate(exc)  # none: the socket; 08: connection exception; 57P: the server going away
    return state is None or state.startswith(("08", "57P"))


def connect(database_url: Secret, *, autocommit: bool = True, application_name: str = "payment-probe") -> Any:
    """A connection whose connect, statements and silent-peer detection are all bounded."""
    if OUTAGE.out:
        raise DatabaseOut("the database was found out earlier in this run")
    import psycopg  # optional dependency: imported only where the database is used

    try:
        return psycopg.connect(
            database_url.reveal(),
            autocommit=autocommit,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            application_name=application_name,
            keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
            tcp_user_timeout=int(GUARD_SECONDS * 1000) - 2000,
        )
    except Exception as exc:
        if is_connection_failure(exc):
            OUTAGE.trip()
        raise


def _shut(fileno: int) -> None:
    OUTAGE.trip()  # the unit of work outlived its bound: the database is out for this run
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
    if OUTAGE.out:
        raise DatabaseOut("the database was found out earlier in this run")
    timer = threading.Timer(seconds, _shut, (fileno,))
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception as exc:
        if is_connection_failure(exc):
            OUTAGE.trip()
        raise
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
