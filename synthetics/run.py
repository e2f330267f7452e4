"""What one run of the legs knows beyond its configuration, handed to pytest in the session's stash.

The runner makes one per slot (``ProvidedConfig``); a plain pytest session, and each of its xdist
workers, makes its own from the options (the run id travels with them; a plain session is not one detection scope: each
of its database steps is its own detection). Fixtures and hooks read it
from ``config.stash[RUN_KEY]``: nothing about a run lives in a module global.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from synthetics.db import Outage
from synthetics.tracing import LegSpans


def fresh_run_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class RunContext:
    run_id: str  # carried by every outcome and cohort team of the run
    maintenance: bool = False  # a maintenance window is open (the runner's, SPEC 12): outcomes say so
    spans: LegSpans = field(default_factory=LegSpans)  # the running leg's span factory and trace id
    outage: Outage = field(default_factory=Outage)  # the database found out in this run (SPEC 10: once)


RUN_KEY = pytest.StashKey[RunContext]()
