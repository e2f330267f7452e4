"""A secret that cannot print itself (pydantic's ``SecretStr`` idea, without the dependency).

Settings hold the API token, the webhook secret, the New Relic key and the database URL as
``Secret``: its ``repr`` and ``str`` are a mask, so a dataclass repr, a fixture shown as a
test's argument, ``--showlocals``, a traceback or JUnit XML cannot carry the value. Code that
needs the value calls ``reveal()`` at the point of use, inside the call that consumes it.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit, urlunsplit

MASK = "**********"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself; pass it straight into the call that needs it, never into a local."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[type, tuple[str]]:
        # xdist and multiprocessing pickle settings; the value travels, the repr still hides it.
        return (Secret, (self._value,))


def reveal(secret: Secret | None) -> str | None:
    return None if secret is None else secret.reveal()


def without_userinfo(url: str) -> str:
    """``https://user:pw@host:443/x`` → ``https://host:443/x``: safe to name in an error."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc))
