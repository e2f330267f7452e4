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
import contextvars
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
    run during a freeze took a minute and the HTTP legs ran twice in 90 s. Each run has its own
    (``RunContext.outage``), made current for the run's steps by ``one_detection``; the next run's
    is fresh, so it tries the database again. Outside a run every call is its own detection.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tripped = False

    def trip(self) -> None:
        with self._lock:
            self.tripped = True

    @property
    def out(self) -> bool:
        """This run already found the database out."""
        return self.tripped


# The running run's outage: set by one_detection for the thread running the run (a context variable,
# so a status page's thread or an HTTP handler, outside any run, is never held to a run's finding).
_CURRENT: contextvars.ContextVar[Outage | None] = contextvars.ContextVar("payment_probe_outage", default=None)


def current_outage() -> Outage | None:
    """The outage of the run this code runs in, if any."""
    return _CURRENT.get()


@contextlib.contextmanager
def one_detection(outage: Outage | None = None) -> Iterator[Outage]:
    """A run's scope: the database is found out at most once in it (``outage``, fresh if not given).
    A nested scope (the legs' pytest session inside the runner's slot) belongs to the outer one."""
    running = _CURRENT.get()
    if running is not None:
        yield running
        return
    chosen = outage if outage is not None else Outage()
    token = _CURRENT.set(chosen)
    try:
        yield chosen
    finally:
        _CURRENT.reset(token)


def _found_out() -> bool:
    outage = _CURRENT.get()
    return outage is not None and outage.out


def _trip(outage: Outage | None = None) -> None:
    outage = outage if outage is not None else _CURRENT.get()
    if outage is not None:  # outside a run every call is its own detection
        outage.trip()


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
    if _found_out():
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
            _trip()
        raise


def _shut(fileno: int, outage: Outage | None) -> None:
    _trip(outage)  # the unit of work outlived its bound: the database is out for this run
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
    if _found_out():
        raise DatabaseOut("the database was found out earlier in this run")
    timer = threading.Timer(seconds, _shut, (fileno, _CURRENT.get()))  # the timer's thread is in no run
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception as exc:
        if is_connection_failure(exc):
            _trip()
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
