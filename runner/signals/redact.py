"""Scrub secret values out of everything a sink is about to emit, and out of pytest's reports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from synthetics.plugin import CONFIG_KEY
from synthetics.providers import PROVIDERS

MASK = "[REDACTED]"
def _signature_pattern(header: str) -> re.Pattern[str]:
    """A provider's signature header as printed anywhere (a dict repr, a header line, JSON): its whole
    value, to whitespace or a quote (Stripe's ``t=…,v1=…`` and Standard's ``v1,…`` hold commas)."""
    return re.compile(rf"(?i)({re.escape(header)}[\"']?\s*[:=]\s*[\"']?)[^\s\"']+")


# Shapes that are secrets whatever their value: bearer tokens, every provider's signature header
# (built from the providers themselves, so a new provider is scrubbed too), API keys, URL passwords.
_PATTERNS = (
    # A bearer token runs to whitespace or a quote: ``;`` and ``,`` are token characters too.
    re.compile(r"(?i)(bearer\s+)[^\s\"']+"),
    *(_signature_pattern(provider.signature_header) for provider in PROVIDERS.values()),
    re.compile(r"(?i)(api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]+"),
    re.compile(r"(://[^:/@\s]+:)[^@/\s]+(@)"),
)


def _escaped_forms(secret: str) -> set[str]:
    return {secret, repr(secret)[1:-1], ascii(secret)[1:-1], json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1]}


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        # Each value as it is and as the places that print it escape it (``repr`` in a traceback
        # or ``-l``, JSON in a report): ``CANARY\TOK`` shows as ``CANARY\\TOK`` there.
        forms = {form for s in secrets if s and len(s) >= 4 for form in _escaped_forms(s)}
        # Longest first, so a URL containing a password is masked whole before the password.
        self._secrets = sorted(forms, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        for pattern in _PATTERNS:
            value = pattern.sub(lambda m: m.group(1) + MASK + (m.group(2) if m.lastindex == 2 else ""), value)
        return value

    def value(self, value: Any) -> Any:
        return self.text(value) if isinstance(value, str) else value

    def mapping(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {key: self.value(v) for key, v in data.items()}


REDACTOR_KEY = pytest.StashKey[Redactor]()


def redactor_of(config: pytest.Config) -> Redactor:
    """One per session (every process): the secret values of this session's configuration."""
    if REDACTOR_KEY not in config.stash:
        probe_config = config.stash.get(CONFIG_KEY, None)
        config.stash[REDACTOR_KEY] = Redactor(probe_config.secrets() if probe_config else ())
    return config.stash[REDACTOR_KEY]
