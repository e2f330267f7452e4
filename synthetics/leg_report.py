"""The leg → outcome wire format: how a leg's detail rides on pytest's ``user_properties``.

Legs write these keys (through ``LegRecord``) and the signals plugin reads them, possibly in
another process under xdist: both import them from here, so the two sides cannot drift.
"""

from __future__ import annotations

LATENCY_KEY = "latency_seconds"  # float: the leg's network time (sum of its phases)
DETAIL_PREFIX = "detail."  # detail.<name>: a scalar the leg noted (audit metadata, event field)
PHASE_PREFIX = "phase."  # phase.<resolve|connect|tls|processing|transfer>: seconds, summed
DETAIL_LIMIT = 500  # characters of human-readable detail kept on an outcome
