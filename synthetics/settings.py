"""Every variable the probe reads, once: its name, the field it fills, its default, what it means,
and whether it is a secret, goes into a header or is a URL (SPEC 3).

The name sets the configuration checks (secrets never echoed, header values printable ASCII, URLs
shown without user info), the list of what is read, and the README's variable table are all derived
from this table; ``python -m synthetics.settings`` prints that table and a test holds the README to
it. Parsing stays in ``synthetics.config`` (several rules span variables: fail days below warn days,
a client key needs its certificate); the defaults are ``ProbeConfig``'s, shown here, never restated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    meaning: str
    field: str | None = None  # the ProbeConfig field it fills; its default is the documented one
    default: str | None = None  # what the README shows when the field's default does not say it
    secret: bool = False  # never echoed in an error, a log line or a signal; may be given as <NAME>_FILE
    header: bool = False  # travels in an HTTP header or a URL path: printable ASCII only
    url: bool = False  # named in an error without its user info


SETTINGS: tuple[Setting, ...] = (
    Setting("PAYMENT_PROBE_ENABLED", "the flag; `1/true/yes/on` turn it on (`0/false/no/off` keep it off)",
            "enabled", "off"),
    Setting("PAYMENT_PROBE_BASE_URL", "the billing API (`http://` or `https://`)", "base_url", url=True),
    Setting("PAYMENT_PROBE_API_TOKEN", "bearer token of the probe's own account (secret)", "api_token",
            secret=True, header=True),
    Setting("PAYMENT_PROBE_DATABASE_URL", "Postgres with `teams`, the audit table and the runner's lock (secret)",
            "database_url", secret=True),
    Setting("RAZORPAY_TEST_WEBHOOK_SECRET", "TEST-mode webhook secret for the upgrade leg (secret)",
            secret=True),
    Setting("PAYMENT_PROBE_TEST_PLAN_ID_PRO", "TEST plan id that maps to the expected tier", "test_plan_id_pro"),
    Setting("PAYMENT_PROBE_LEG_INTERVALS", "`leg=seconds,…`: each leg's interval; every interval a whole multiple "
            "of the shortest (else exit 2)", "leg_intervals", "see [cadence](#cadence-and-time-to-page)"),
    Setting("PAYMENT_PROBE_INTERVAL_SECONDS", "when set, the interval of every leg `PAYMENT_PROBE_LEG_INTERVALS` "
            "does not name (`300` alone: the old single cadence)", "interval_seconds"),
    Setting("PAYMENT_PROBE_PROVIDER_API_KEY", "`provider_webhook_health`'s read-only key (secret): Stripe a "
            "restricted key `rk_live_…`/`rk_test_…` with Webhook Endpoints: Read and Events: Read (a live secret key "
            "`sk_live_…` is exit 2); Razorpay the partner's `key_id:key_secret`", "provider_api_key",
            secret=True, header=True),
    Setting("PAYMENT_PROBE_PROVIDER_TEST_KEY", "`provider_roundtrip`'s Stripe TEST key (secret; `sk_test_…`, or "
            "`rk_test_…` with write on Customers and Subscriptions and read on Events); any live key is exit 2",
            "provider_test_key", secret=True, header=True),
    Setting("PAYMENT_PROBE_PROVIDER_API_URL", "the provider's API (the sandbox serves one)", "provider_api_url",
            "`https://api.stripe.com`, `https://api.razorpay.com`", url=True),
    Setting("PAYMENT_PROBE_PUBLIC_WEBHOOK_URL", "the URL the provider delivers to, as registered there",
            "public_webhook_url", "base URL + webhook path", url=True),
    Setting("PAYMENT_PROBE_RAZORPAY_ACCOUNT_ID", "Razorpay: the merchant account whose webhooks the partner key reads",
            "razorpay_account_id", header=True),
    Setting("PAYMENT_PROBE_DELIVERY_LAG_SECONDS", "an undelivered event younger than this is in flight; older, it "
            "is failing", "delivery_lag_seconds"),
    Setting("PAYMENT_PROBE_ROUNDTRIP_WAIT_SECONDS", "how long `provider_roundtrip` waits for each real delivery to "
            "take effect", "roundtrip_wait_seconds"),
    Setting("PAYMENT_PROBE_LEGS", "the legs this deployment runs (comma-separated); the others are not collected: "
            "no outcome, no series, no alert, not on the status page (a staging cluster without the database: the "
            "prod-safe legs)", "legs", "all"),
    Setting("PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS", "per request (connect, each read, and the whole body)",
            "http_timeout_seconds"),
    Setting("PAYMENT_PROBE_LEG_TIMEOUT_SECONDS", "per leg (pytest-timeout, signal method: the reap still runs)",
            "leg_timeout_seconds"),
    Setting("PAYMENT_PROBE_METRICS_PORT", "`/metrics` and `/healthz`", "metrics_port"),
    Setting("PAYMENT_PROBE_METRICS_HOST", "address for `/metrics` and `/healthz` (`127.0.0.1` for loopback only)",
            "metrics_host"),
    Setting("NEW_RELIC_ACCOUNT_ID", "events go to New Relic only when it and `NEW_RELIC_INSERT_KEY` are set",
            "new_relic_account_id", header=True),
    Setting("NEW_RELIC_INSERT_KEY", "the New Relic insert key (secret)", "new_relic_insert_key", secret=True,
            header=True),
    Setting("NEW_RELIC_REGION", "`US` or `EU` endpoint", "new_relic_region"),
    Setting("PAYMENT_PROBE_EVENTS_URL", "replaces the New Relic endpoint (a proxy, a test receiver)", "events_url",
            url=True),
    Setting("PAYMENT_PROBE_SLOW_SECONDS", "overrides the four HTTP legs' budgets", "slow_seconds", "per leg"),
    Setting("PAYMENT_PROBE_UPGRADE_SLOW_SECONDS", "the upgrade leg's budget", "upgrade_slow_seconds", "8"),
    Setting("PAYMENT_PROBE_UPGRADE_WAIT_SECONDS", "how long the money-path legs poll for each tier change",
            "upgrade_wait_seconds"),
    Setting("PAYMENT_PROBE_EXPECTED_TIER", "the tier the TEST plan must give", "expected_tier"),
    Setting("PAYMENT_PROBE_CHECKOUT_PLAN_ID", "plan id the checkout leg posts", "checkout_plan_id"),
    Setting("PAYMENT_PROBE_WEBHOOK_PATH", "the webhook route", "webhook_path",
            "the provider's: /razorpay/webhook, /stripe/webhook, /webhooks"),
    Setting("PAYMENT_PROBE_ENVIRONMENT", "e.g. `prod`, `staging`: carried on events, audit rows, logs", "environment"),
    Setting("PAYMENT_PROBE_AUDIT_TABLE", "the audit table (created if missing)", "audit_table"),
    Setting("PAYMENT_PROBE_SPOOL_DIR", "where audit rows wait, bounded (50,000 rows), while the database is "
            "unreachable; mount a volume there in a container", "spool_dir",
            "`$XDG_STATE_HOME/payment-probe` (else `~/.local/state/payment-probe`)"),
    Setting("PAYMENT_PROBE_CA_BUNDLE", "PEM file of the CAs trusted for the billing API (an internal CA); applies "
            "to the legs only, and verification is never switched off", "ca_bundle", "the system store"),
    Setting("PAYMENT_PROBE_CLIENT_CERT", "client certificate (a PEM file) when the billing API wants mutual TLS; an "
            "unreadable or refused file is exit 2 naming the variable", "client_cert"),
    Setting("PAYMENT_PROBE_CLIENT_KEY", "its key (a PEM file; needs `PAYMENT_PROBE_CLIENT_CERT`)", "client_key"),
    Setting("PAYMENT_PROBE_CERT_WARN_DAYS", "`tls_certificate`: at most this many days left is `degraded` "
            "(`cert_expiring:<N>d`)", "cert_warn_days"),
    Setting("PAYMENT_PROBE_CERT_FAIL_DAYS", "`tls_certificate`: at most this many days left is `fail`; must be below "
            "the warn days", "cert_fail_days"),
    Setting("PAYMENT_PROBE_PROVIDER", "the webhook scheme: `razorpay`, `stripe` or `standard` (Standard Webhooks "
            "v1); sets the default webhook path", "provider"),
    Setting("PAYMENT_PROBE_WEBHOOK_SECRET", "the TEST webhook secret for any provider (secret; for `razorpay`, "
            "`RAZORPAY_TEST_WEBHOOK_SECRET` is read too)", "webhook_secret", secret=True),
    Setting("PAYMENT_PROBE_CANCELLED_TIER", "the tier a cancellation must return a team to (`webhook_replay`)",
            "cancelled_tier"),
    Setting("PAYMENT_PROBE_REPLAY_SETTLE_SECONDS", "how long `webhook_replay` holds the tier at the cancelled tier "
            "after the retry", "replay_settle_seconds"),
    Setting("PAYMENT_PROBE_LOCATION", "where this prober runs (`[a-z0-9-]{1,32}`, a region or cluster): a "
            "`location` label on every `instant_payment_probe_*` series and a field on every outcome; replicas of "
            "one location run each slot once between them, and every location runs every slot (locations may "
            "share one database)", "location"),
    Setting("PAYMENT_PROBE_CONFIRM_RETRIES", "the runner runs a failed leg again up to this many times inside the "
            "run before it reports `fail` (0 turns it off); a retry that would push the run past its slot is not "
            "made", "confirm_retries"),
    Setting("PAYMENT_PROBE_CONFIRM_DELAY_SECONDS", "this far apart", "confirm_delay_seconds"),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}
VARIABLES = tuple(BY_NAME)
SECRET_VARIABLES = frozenset(s.name for s in SETTINGS if s.secret)
HEADER_VARIABLES = frozenset(s.name for s in SETTINGS if s.header) | {"--api-token"}
URL_VARIABLES = frozenset(s.name for s in SETTINGS if s.url) | {"--base-url"}


def shown_default(setting: Setting) -> str:
    """The README's default: the setting's own words, else ``ProbeConfig``'s default as an operator writes it."""
    if setting.default is not None:
        return setting.default
    if setting.field is None:
        return "—"
    from synthetics.config import ProbeConfig

    value = getattr(ProbeConfig(), setting.field)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def markdown_table() -> list[str]:
    """The README's variable table, one row per variable."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {shown_default(s)} | {s.meaning} |" for s in SETTINGS]
    return rows


def check_fields() -> list[str]:
    """Settings whose field ``ProbeConfig`` does not have (a rename that left the table behind)."""
    from synthetics.config import ProbeConfig

    fields = {f.name for f in dataclasses.fields(ProbeConfig)}
    return [s.name for s in SETTINGS if s.field is not None and s.field not in fields]


if __name__ == "__main__":
    print("\n".join(markdown_table()))
