"""The closed vocabulary of reasons: every token an outcome can carry (SPEC sections 1, 10, 14, 17).

Dashboards group by these, alerts name them and runbooks are indexed by them, so code never spells a
reason itself: it names a constant here or calls a constructor (``http_status(503)``). The project's
tests fail when a leg, the client or the plugin raises with a reason written anywhere else, and when
a reason here is not one token. Families end in ``:<detail>``: a status code, a variable, a cause.
"""

from __future__ import annotations

import re

TOKEN = re.compile(r"^[a-z][a-z0-9_]*(:[A-Za-z0-9_.\-]+)?$")
"""What a reason looks like: a word, optionally ``:`` and one detail token (no spaces, no colons)."""

# ---- the outcome itself ---------------------------------------------------------------------
OK = "ok"
SLOW = "slow"  # correct, but over the leg's latency budget
SKIPPED = "skipped"  # a skip whose message names no reason (a bare pytest.skip)
FAILED = "failed"  # a bare pytest.fail
TIMEOUT = "timeout"  # the HTTP deadline or the leg timeout
ASSERTION_FAILED = "assertion_failed"
UNKNOWN = "probe_error:unknown"  # a failed report no hook stamped

# ---- the wire (synthetics.wire's error kinds) -----------------------------------------------
CONNECTION_ERROR = "connection_error"
PROTOCOL_ERROR = "protocol_error"
BODY_TOO_LARGE = "body_too_large"
BAD_URL = "bad_url"
INVALID_REQUEST = "invalid_request"  # a header value that must never reach the socket (CR, LF, NUL)

# ---- the API's answers ----------------------------------------------------------------------
NOT_JSON = "not_json"
NOT_HTTPS = "not_https"
UNSIGNED_ACCEPTED = "unsigned_accepted"
FORGED_ACCEPTED = "forged_accepted"
STALE_ACCEPTED = "stale_accepted"
WRONG_REJECTION = "wrong_rejection"

# ---- the money path -------------------------------------------------------------------------
MINT_FAILED = "mint_failed"
REAP_FAILED = "reap_failed"
DB_ERROR = "db_error"
TIER_NOT_FLIPPED = "tier_not_flipped"
REPLAY_APPLIED = "replay_applied"
CANCEL_NOT_APPLIED = "cancel_not_applied"

# ---- the provider's view (SPEC 17) ----------------------------------------------------------
ENDPOINT_MISSING = "endpoint_missing"
ENDPOINT_DISABLED = "endpoint_disabled"
EVENTS_UNSUBSCRIBED = "events_unsubscribed"
DELIVERIES_FAILING = "deliveries_failing"
PROVIDER_RATE_LIMITED = "provider_rate_limited"
DELIVERY_MISSING = "delivery_missing"
DELIVERY_REJECTED = "delivery_rejected"

WORDS = frozenset({
    OK, SLOW, SKIPPED, FAILED, TIMEOUT, ASSERTION_FAILED, CONNECTION_ERROR, PROTOCOL_ERROR, BODY_TOO_LARGE,
    BAD_URL, INVALID_REQUEST, NOT_JSON, NOT_HTTPS, UNSIGNED_ACCEPTED, FORGED_ACCEPTED, STALE_ACCEPTED,
    WRONG_REJECTION, MINT_FAILED, REAP_FAILED, DB_ERROR, TIER_NOT_FLIPPED, REPLAY_APPLIED, CANCEL_NOT_APPLIED,
    ENDPOINT_MISSING, ENDPOINT_DISABLED, EVENTS_UNSUBSCRIBED, DELIVERIES_FAILING, PROVIDER_RATE_LIMITED,
    DELIVERY_MISSING, DELIVERY_REJECTED,
})
"""The reasons that are one word."""


def _detail(value: object) -> str:
    """One detail token: a colon or a space inside it would make two (``tls_error:expired`` → ``tls_error_expired``)."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", str(value)) or "unknown"


def config_missing(variable: str) -> str:
    """A leg that cannot run without ``variable``: ``degraded``, never a page."""
    return f"config_missing:{_detail(variable)}"


def http_status(status: int) -> str:
    return f"http_status:{int(status)}"


def redirect(status: int) -> str:
    """A 3xx, never followed (SPEC 2)."""
    return f"redirect:{int(status)}"


def webhook_status(status: int) -> str:
    """A signed TEST event answered with something but 200."""
    return f"webhook_status:{int(status)}"


def replay_status(status: int) -> str:
    """A provider's retry of an applied event answered with something but 2xx."""
    return f"replay_status:{int(status)}"


def cert_expiring(days_left: int) -> str:
    return f"cert_expiring:{int(days_left)}d"


def tls_error(cause: str) -> str:
    return f"tls_error:{_detail(cause)}"


def probe_error(exception_type: str) -> str:
    """A bug in the probe (an exception no leg raised on purpose), named by its type."""
    return f"probe_error:{_detail(exception_type)}"


def provider_auth(status: int) -> str:
    """The provider refused the probe's key (401/403): ``degraded``, the key is the probe's."""
    return f"provider_auth:{int(status)}"


def provider_unavailable(cause: str) -> str:
    """The provider's API did not answer usefully: a wire kind, ``http_status_503``, ``not_json``."""
    return f"provider_unavailable:{_detail(cause)}"


def provider_rejected(code: str | int) -> str:
    """The provider refused a TEST-mode call of the round trip (its error code or HTTP status)."""
    return f"provider_rejected:{_detail(code)}"


FAMILIES = frozenset({
    "config_missing", "http_status", "redirect", "webhook_status", "replay_status", "cert_expiring",
    "tls_error", "probe_error", "provider_auth", "provider_unavailable", "provider_rejected",
})
"""The reasons that carry a detail, by the word before the colon (each has its constructor above)."""


def is_config_missing(reason: str) -> bool:
    return reason.startswith("config_missing:")


def known(reason: str) -> bool:
    """A reason of the vocabulary: one of the words, or a family's word, ``:`` and one detail token."""
    if not TOKEN.match(reason):
        return False
    word, colon, _detail_part = reason.partition(":")
    return word in FAMILIES if colon else reason in WORDS
