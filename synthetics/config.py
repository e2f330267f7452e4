"""The probe's settings: read once from the environment (12-factor), validated, then immutable.

Every consumer (the legs' fixtures, the signals plugin, the runner) gets one ``ProbeConfig``
built here, so a variable is parsed and checked in exactly one place and its error message
cannot drift between the laptop, the CI gate and the in-cluster runner.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from synthetics.registry import LEGS
from synthetics.secret import Secret, without_userinfo
from synthetics.settings import HEADER_VARIABLES, SECRET_VARIABLES, URL_VARIABLES, VARIABLES
from synthetics.tls import TLSConfigError, checked_context

# What each variable is (secret, header-bound, a URL) is declared once, in the settings table.
# The provider's own API (SPEC 17), by provider; the sandbox serves one.
PROVIDER_API_URLS = {"stripe": "https://api.stripe.com", "razorpay": "https://api.razorpay.com"}

FILE_SUFFIX = "_FILE"
"""``<VARIABLE>_FILE`` names a file holding a secret's value (a mounted Kubernetes/Docker secret)."""

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})

DEFAULT_LOCATION = "local"
"""PAYMENT_PROBE_LOCATION when unset: one cluster is one location (SPEC 15); its lock keeps the historical key."""

DEFAULT_METRICS_PORT = 9466
"""Documented default for ``/metrics`` and ``/healthz`` (9466: free in Prometheus' port list)."""


class ConfigError(ValueError):
    """A setting has a value the probe cannot use; ``str()`` is the one line an operator sees."""

    def __init__(self, variable: str, accepted: str, value: str | None = None) -> None:
        self.variable = variable
        shown = ""
        if value is not None and variable in URL_VARIABLES:
            value = without_userinfo(value)
        if value is not None and variable not in SECRET_VARIABLES:
            shown = f", got {value!r}"
        super().__init__(f"{variable}: expected {accepted}{shown}")


def resolve_environment(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with every ``<SECRET>_FILE`` read into ``<SECRET>``, then every value checked.

    A file's content is the value with one trailing newline stripped (as ``echo`` and editors
    leave it); a missing, unreadable or empty file, or both forms set, is a ``ConfigError``
    naming the variable. Then no value may hold a control character (CR, LF, NUL, ...: a header
    or request injected through configuration), and a value that becomes a header must be
    printable ASCII. The value itself is never shown.
    """
    resolved = {key: value for key, value in env.items() if key in VARIABLES or key == "XDG_STATE_HOME"}
    for name in sorted(SECRET_VARIABLES):
        path = env.get(name + FILE_SUFFIX)
        if path is None:
            continue
        if env.get(name):
            raise ConfigError(name + FILE_SUFFIX, f"either {name} or {name}{FILE_SUFFIX}, not both")
        value = read_secret_file(name + FILE_SUFFIX, path.strip())
        value = value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")
        if not value:
            raise ConfigError(name + FILE_SUFFIX, "a file holding the secret, not an empty one")
        resolved[name] = value
    for name, value in resolved.items():
        check_value(name, value)
    return resolved


SECRET_FILE_MAX_BYTES = 64 * 1024


def read_secret_file(variable: str, path: str) -> str:
    """A mounted secret's content: a regular file (after symlinks) of at most 64 KiB, read bounded.

    Opened ``O_NONBLOCK`` and checked with ``fstat`` before any read, so a FIFO without a writer,
    a device (``/dev/zero``), a directory or a huge file is exit 2 at once: never a start-up that
    blocks forever with ``/healthz`` unserved, never a memory blow-up (SPEC 3).
    """
    accepted = "the path of a readable UTF-8 file holding the secret"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise ConfigError(variable, accepted) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(variable, "a regular file holding the secret (not a FIFO, device or directory)")
        too_large = f"a file of at most {SECRET_FILE_MAX_BYTES // 1024} KiB holding the secret"
        if info.st_size > SECRET_FILE_MAX_BYTES:
            raise ConfigError(variable, too_large)
        chunks: list[bytes] = []
        size = 0
        while size <= SECRET_FILE_MAX_BYTES:  # the file may grow after fstat: the cap holds anyway
            chunk = os.read(fd, SECRET_FILE_MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > SECRET_FILE_MAX_BYTES:
            raise ConfigError(variable, too_large)
        return b"".join(chunks).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        raise ConfigError(variable, accepted) from None
    finally:
        os.close(fd)


def check_value(name: str, value: str) -> None:
    """No control character anywhere; printable ASCII where the value becomes a header."""
    stripped = value.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in stripped):
        raise ConfigError(name, "a value without control characters (CR, LF, NUL, tab, ...)")
    if name in HEADER_VARIABLES and not _printable_ascii(stripped):
        raise ConfigError(name, "printable ASCII (the value is sent in an HTTP header)")


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(name, "one of 1/true/yes/on or 0/false/no/off", raw)


def parse_seconds(env: Mapping[str, str], name: str, default: float, *, zero_ok: bool = False) -> float:
    raw = _text(env, name)
    if raw is None:
        return default
    accepted = "a number of seconds, 0 or more" if zero_ok else "a positive number of seconds"
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, accepted, raw) from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(name, accepted, raw)
    return value


def parse_count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > 10:
        raise ConfigError(name, "a whole number from 0 to 10", raw)
    return int(raw)


def parse_port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, "a TCP port number 0-65535", raw) from None
    if not 0 <= value <= 65535:
        raise ConfigError(name, "a TCP port number 0-65535", raw)
    return value


def parse_http_url(name: str, raw: str | None) -> str | None:
    """An absolute http(s) URL without a trailing slash, so paths can be appended verbatim.

    No query, fragment or user info (``…/?`` would send every leg to ``/?/api/v1/…`` and pass on
    the root's JSON), and a host that can be a DNS name or an IP literal: a typo'd host is exit 2
    now, not a red leg of an unclear kind at every run.
    """
    if raw is None:
        return None
    raw = raw.strip()
    if not raw:
        return None
    accepted = "an absolute http:// or https:// URL"
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(name, accepted, raw) from None  # ConfigError drops any user:password@
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(name, accepted, raw)
    if "@" in parts.netloc:
        raise ConfigError(name, f"{accepted} without user info (user:password@)")
    if "?" in raw or "#" in raw:
        raise ConfigError(name, f"{accepted} without a query or fragment ('?', '#')")
    if not _is_host(parts.hostname):
        raise ConfigError(name, f"{accepted} whose host is a DNS name or an IP literal", raw)
    if parts.port == 0 or parts.netloc.endswith(":"):
        raise ConfigError(name, f"{accepted} with a port from 1 to 65535", raw)
    if not _PATH.fullmatch(parts.path):
        raise ConfigError(name, f"{accepted} whose path has only characters RFC 3986 allows (percent-encode the "
                          "rest)")
    return raw.rstrip("/")


# RFC 3986 path characters: unreserved, sub-delims, ':', '@', '/', and %XX escapes.
_PATH = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*")
# A dotted-decimal-looking host that is not four decimal octets: ``127.1``, ``0x7f.1``, ``1.2.3``,
# ``010.0.0.1`` — getaddrinfo would read them as IPv4 addresses (inet_aton), a URL reader as names.
_NUMERIC_HOST = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)


_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def _is_host(host: str) -> bool:
    """An IP literal, or a DNS name: dot-separated labels of 1-63 letters, digits, ``-``, ``_``."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        return False  # a non-canonical IPv4 form: neither a DNS name nor an address we would connect to as written
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


def _printable_ascii(value: str) -> bool:
    return all(" " <= c <= "~" for c in value)


def parse_database_url(name: str, raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    if urlsplit(raw).scheme not in ("postgres", "postgresql"):
        raise ConfigError(name, "a postgresql:// URL")
    return raw


def parse_days(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigError(name, "a positive whole number of days", raw)
    return int(raw)


def parse_pem_file(env: Mapping[str, str], name: str) -> str | None:
    """A path to a readable file: checked at start, so a typo is exit 2, not a red leg forever."""
    raw = _text(env, name)
    if raw is None:
        return None
    try:
        with open(raw, "rb") as handle:
            handle.read(1)
    except OSError:
        raise ConfigError(name, "a readable PEM file", raw) from None
    return raw


def parse_path(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _text(env, name) or default
    if not raw.startswith("/"):
        raise ConfigError(name, "an absolute path starting with '/'", raw)
    if not _printable_ascii(raw) or " " in raw or "?" in raw or "#" in raw:
        raise ConfigError(name, "an absolute path of printable ASCII without spaces, '?' or '#'")
    return raw


def parse_identifier(env: Mapping[str, str], name: str, default: str) -> str:
    """A SQL table name: letters, digits and underscores, optionally schema-qualified."""
    raw = _text(env, name) or default
    for part in raw.split("."):
        if not part or not (part[0].isalpha() or part[0] == "_") or not all(
            c.isalnum() or c == "_" for c in part
        ):
            raise ConfigError(name, "a table name like audit_log or schema.audit_log", raw)
    if raw.count(".") > 1:
        raise ConfigError(name, "a table name like audit_log or schema.audit_log", raw)
    return raw


@dataclass(frozen=True)
class ProbeConfig:
    """Everything SPEC section 3 names, typed. ``None`` means "not configured"."""

    enabled: bool = False
    base_url: str | None = None
    api_token: Secret | None = None
    database_url: Secret | None = None
    webhook_secret: Secret | None = None
    test_plan_id_pro: str | None = None
    # Cadence (SPEC 18): each leg's interval is its override, else PAYMENT_PROBE_INTERVAL_SECONDS when set,
    # else the registry's default; ``interval_of`` reads it.
    interval_seconds: float | None = None
    leg_intervals: tuple[tuple[str, float], ...] = ()  # PAYMENT_PROBE_LEG_INTERVALS: (leg, seconds) overrides
    legs: tuple[str, ...] = tuple(LEGS)  # PAYMENT_PROBE_LEGS: the legs this deployment runs, registry order
    http_timeout_seconds: float = 15.0
    leg_timeout_seconds: float = 60.0
    metrics_port: int = DEFAULT_METRICS_PORT
    metrics_host: str = "0.0.0.0"  # PAYMENT_PROBE_METRICS_HOST; 127.0.0.1 for loopback only
    new_relic_account_id: str | None = None
    new_relic_insert_key: Secret | None = None
    new_relic_region: str = "US"
    events_url: str | None = None
    slow_seconds: float | None = None
    upgrade_slow_seconds: float | None = None
    upgrade_wait_seconds: float = 30.0
    expected_tier: str = "pro"
    checkout_plan_id: str = "pro"
    webhook_path: str = "/razorpay/webhook"
    environment: str | None = None
    audit_table: str = "audit_log"
    spool_dir: str | None = None  # PAYMENT_PROBE_SPOOL_DIR; default under XDG_STATE_HOME
    ca_bundle: str | None = None  # PEM of the CAs trusted for the billing API; None: system store
    client_cert: str | None = None  # PEM client certificate for mutual TLS
    client_key: str | None = None  # its key (the path; the file's contents are never read here)
    cert_warn_days: int = 21
    cert_fail_days: int = 7
    provider: str = "razorpay"  # PAYMENT_PROBE_PROVIDER: the webhook scheme (synthetics.providers)
    cancelled_tier: str = "hobby"  # the tier a cancellation returns a team to (webhook_replay)
    replay_settle_seconds: float = 3.0  # how long webhook_replay holds the tier after the retry
    confirm_retries: int = 2  # the runner re-runs a failed leg this many more times before it is a fail
    confirm_delay_seconds: float = 15.0  # this far apart
    location: str = DEFAULT_LOCATION  # PAYMENT_PROBE_LOCATION: where this prober runs (a label on every series)
    # The provider's view (SPEC 17)
    provider_api_key: Secret | None = None  # PAYMENT_PROBE_PROVIDER_API_KEY: read-only (rk_…, or id:secret)
    provider_test_key: Secret | None = None  # PAYMENT_PROBE_PROVIDER_TEST_KEY: a Stripe TEST key, never live
    provider_api_url: str | None = None  # PAYMENT_PROBE_PROVIDER_API_URL (default: the provider's)
    public_webhook_url: str | None = None  # PAYMENT_PROBE_PUBLIC_WEBHOOK_URL (default: base URL + webhook path)
    razorpay_account_id: str | None = None  # PAYMENT_PROBE_RAZORPAY_ACCOUNT_ID
    delivery_lag_seconds: float = 900.0  # PAYMENT_PROBE_DELIVERY_LAG_SECONDS: younger undelivered events are in flight
    roundtrip_wait_seconds: float = 60.0  # PAYMENT_PROBE_ROUNDTRIP_WAIT_SECONDS
    otel_headers: Secret | None = None  # OTEL_EXPORTER_OTLP_(TRACES_)HEADERS: vendor API keys, redacted
    otel_endpoint: Secret | None = None  # the OTLP endpoint checked at start; a vendor may put a key in its query
    trace_export: TraceExport | None = None  # where spans go; None: tracing off (no endpoint, or OTEL_SDK_DISABLED)

    def interval_of(self, leg: str) -> float:
        """The leg's interval: its override, else PAYMENT_PROBE_INTERVAL_SECONDS, else its default."""
        for name, seconds in self.leg_intervals:
            if name == leg:
                return seconds
        return self.interval_seconds if self.interval_seconds is not None else LEGS[leg].interval_seconds

    @property
    def intervals(self) -> dict[str, float]:
        """Each leg this deployment runs and its interval, in registry order (the gauges, the status page)."""
        return {leg: self.interval_of(leg) for leg in self.legs}

    @property
    def tick_seconds(self) -> float:
        """The loop's tick: the shortest interval of the legs this deployment runs."""
        return min(self.intervals.values())

    @property
    def longest_interval_seconds(self) -> float:
        return max(self.intervals.values())

    def due_legs(self, slot_start: float) -> tuple[str, ...]:
        """The legs a tick runs: those whose interval divides the tick's wall-clock time (SPEC 18), so
        every replica and location agrees on them without a word between them. Counted in whole ticks,
        as check_cadence validated the intervals: a leg is due at every n-th tick, n its multiple."""
        tick = self.tick_seconds
        ticks = slot_start / tick
        index = round(ticks)
        if abs(ticks - index) > 1e-3:  # not a tick of this loop at all
            return ()
        return tuple(leg for leg in self.legs if index % max(1, round(self.interval_of(leg) / tick)) == 0)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value this config holds, for redaction of whatever a sink emits."""
        values: list[str] = []
        for secret in (self.api_token, self.webhook_secret, self.new_relic_insert_key, self.provider_api_key,
                       self.provider_test_key):
            if secret:
                values.append(secret.reveal())
        if self.database_url:
            password = urlsplit(self.database_url.reveal()).password
            if password:
                values.append(password)
            values.append(self.database_url.reveal())
        if self.client_key:
            values.extend(_key_material(self.client_key))
        if self.provider_api_key and ":" in self.provider_api_key.reveal():  # Razorpay's id:secret: each half,
            import base64  # and the HTTP Basic credential it becomes

            key = self.provider_api_key.reveal()
            values += [part for part in key.split(":", 1) if len(part) >= 8]
            values.append(base64.b64encode(key.encode()).decode())
        if self.otel_headers:  # "api-key=VALUE,x-team=VALUE": each value, raw and URL-decoded
            values += _pair_values(self.otel_headers.reveal(), ",")
        if self.otel_endpoint:  # "https://collector/v1/traces?api_key=VALUE": each query value, the same
            values += _pair_values(urlsplit(self.otel_endpoint.reveal()).query, "&")
        return tuple(values)


def _pair_values(text: str, separator: str) -> list[str]:
    """The values of ``name=value`` pairs, raw and URL-decoded both ways (``%20`` and ``+``), as they may be printed."""
    from urllib.parse import unquote, unquote_plus

    values: list[str] = []
    for pair in text.split(separator):
        value = pair.partition("=")[2].strip()
        if value:
            values += [value, unquote(value), unquote_plus(value)]
    return values


def default_spool_dir(env: Mapping[str, str]) -> str:
    """Where audit rows wait for the database when PAYMENT_PROBE_SPOOL_DIR is unset (XDG's state directory)."""
    return os.path.join(_text(env, "XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "payment-probe")


def _whole_multiple(value: float, unit: float) -> bool:
    ratio = value / unit
    return abs(ratio - round(ratio)) < 1e-6


def parse_legs(env: Mapping[str, str]) -> tuple[str, ...]:
    """PAYMENT_PROBE_LEGS: a comma-separated subset of the legs (default all), kept in registry order."""
    raw = _text(env, "PAYMENT_PROBE_LEGS")
    if raw is None:
        return tuple(LEGS)
    names = {name.strip() for name in raw.split(",") if name.strip()}
    unknown = sorted(names - set(LEGS))
    if unknown or not names:
        raise ConfigError("PAYMENT_PROBE_LEGS", f"a comma-separated list of legs ({', '.join(LEGS)})", raw)
    return tuple(leg for leg in LEGS if leg in names)


def parse_leg_intervals(env: Mapping[str, str]) -> tuple[tuple[str, float], ...]:
    """PAYMENT_PROBE_LEG_INTERVALS: ``leg=seconds,...``, each leg once, each a positive number of seconds."""
    name = "PAYMENT_PROBE_LEG_INTERVALS"
    raw = _text(env, name)
    if raw is None:
        return ()
    accepted = f"leg=seconds pairs separated by commas, each leg once, of {', '.join(LEGS)}"
    pairs: dict[str, float] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        leg, equals, seconds = (part.strip() for part in item.partition("="))
        if not equals or leg not in LEGS or leg in pairs:
            raise ConfigError(name, accepted, raw)
        try:
            value = float(seconds)
        except ValueError:
            raise ConfigError(name, accepted, raw) from None
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(name, accepted, raw)
        pairs[leg] = value
    return tuple(pairs.items())


def parse_provider_keys(env: Mapping[str, str], provider: str) -> tuple[str | None, str | None]:
    """The provider's keys (SPEC 17): read-only for webhook health, TEST mode for the round trip. A key
    that can move live money is exit 2, always: a monitor never holds one."""
    api_key = _text(env, "PAYMENT_PROBE_PROVIDER_API_KEY")
    test_key = _text(env, "PAYMENT_PROBE_PROVIDER_TEST_KEY")
    if api_key is not None and provider == "stripe":
        if api_key.startswith("sk_live_"):
            raise ConfigError("PAYMENT_PROBE_PROVIDER_API_KEY", "a Stripe restricted key (rk_live_... or rk_test_...) "
                              "with Webhook Endpoints: Read and Events: Read, never a live secret key sk_live_...")
        if not api_key.startswith(("rk_live_", "rk_test_", "sk_test_")):
            raise ConfigError("PAYMENT_PROBE_PROVIDER_API_KEY", "a Stripe restricted key (rk_live_... or rk_test_...)")
    if api_key is not None and provider == "razorpay":
        key_id, colon, key_secret = api_key.partition(":")
        if not (colon and key_id.strip() and key_secret.strip()):
            raise ConfigError("PAYMENT_PROBE_PROVIDER_API_KEY", "the Razorpay partner key as key_id:key_secret")
    if test_key is not None and not test_key.startswith(("sk_test_", "rk_test_")):
        raise ConfigError("PAYMENT_PROBE_PROVIDER_TEST_KEY", "a Stripe TEST key (sk_test_... or rk_test_...), "
                          "never a live one")
    return api_key, test_key


def applicable(leg: str, provider: str) -> bool:
    """A leg the provider has the means for (SPEC 17: ``standard`` defines no provider API)."""
    providers = LEGS[leg].providers
    return providers is None or provider in providers


def check_cadence(config: ProbeConfig) -> None:
    """Every selected leg's interval a whole multiple of the shortest: the loop ticks at the shortest, and a
    leg runs at the ticks its interval divides (SPEC 18)."""
    tick = config.tick_seconds
    odd = [leg for leg in config.legs if not _whole_multiple(config.interval_of(leg), tick)]
    if odd:
        variable = "PAYMENT_PROBE_LEG_INTERVALS" if config.leg_intervals else "PAYMENT_PROBE_INTERVAL_SECONDS"
        shown = ", ".join(f"{leg}={config.interval_of(leg):g}" for leg in odd)
        raise ConfigError(variable, f"intervals that are whole multiples of the shortest ({tick:g} s); not {shown}")


OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


@dataclass(frozen=True)
class TraceExport:
    """Where and how spans leave (SPEC 16), read with every other setting at start, so the tracer reads
    no environment of its own and a worker under ``-n`` exports exactly what its controller does."""

    variable: str  # the variable that named the endpoint (the [traces] extra's message names it)
    endpoint: Secret  # the traces URL itself: OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/traces appended
    headers: Secret | None  # OTEL_EXPORTER_OTLP_TRACES_HEADERS, else OTEL_EXPORTER_OTLP_HEADERS
    timeout_seconds: float  # the export's deadline: the OTLP timeout variables, never over 5 s
    service_name: str  # OTEL_SERVICE_NAME, default payment-probe


TRACE_EXPORT_SECONDS = 5.0  # SPEC 16: an export timeout of at most 5 s


def parse_trace_export(env: Mapping[str, str]) -> TraceExport | None:
    return trace_export_of(env, parse_otlp_endpoint(env))


def trace_export_of(env: Mapping[str, str], chosen: tuple[str, str] | None) -> TraceExport | None:
    """Tracing is on when an OTLP endpoint is set (``chosen``: its variable and checked value) and the
    SDK is not disabled (the OTel rules: any other value of OTEL_SDK_DISABLED leaves it on)."""
    if chosen is None or (env.get("OTEL_SDK_DISABLED") or "").strip().lower() in TRUE_WORDS:
        return None
    variable, endpoint = chosen
    if variable == "OTEL_EXPORTER_OTLP_ENDPOINT":
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    timeout = TRACE_EXPORT_SECONDS
    # The specification gives these in milliseconds; older SDKs read seconds: a value over 100 is taken
    # as milliseconds. Either way the export never waits more than 5 s; a value that is no number is
    # passed over, as the SDK would.
    for name in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        try:
            given = float(env[name])
        except (KeyError, ValueError):
            continue
        timeout = min(timeout, given / (1000.0 if given > 100 else 1.0))
        break
    headers = env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS") or None
    return TraceExport(variable=variable, endpoint=Secret(endpoint), headers=_secret(headers), timeout_seconds=timeout,
                       service_name=env.get("OTEL_SERVICE_NAME") or "payment-probe")


def parse_otlp_endpoint(env: Mapping[str, str]) -> tuple[str, str] | None:
    """The OTLP endpoint variables, checked like a URL at start (SPEC 3, 16): ``http``/``https`` and a
    host, else exit 2 naming the variable. A scheme-less value would otherwise reach the SDK, whose
    own logger prints it, query key and all, on a raw stderr line. The value is never shown. Returns
    the one the SDK uses (the traces variable first) as (variable, value)."""
    chosen: tuple[str, str] | None = None
    for name in OTLP_ENDPOINT_VARIABLES:
        raw = env.get(name)
        if raw is None or not raw.strip():
            continue
        value = raw.strip()
        accepted = "an absolute http:// or https:// URL of the OTLP collector"
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            raise ConfigError(name, accepted) from None
        if parts.scheme not in ("http", "https") or not parts.hostname or not _is_host(parts.hostname) \
                or port == 0 or not _printable_ascii(value) or " " in value:
            raise ConfigError(name, accepted)
        chosen = chosen or (name, value)
    return chosen


def _key_material(path: str) -> list[str]:
    """The client key's base64 lines, so that a key file echoed anywhere is still scrubbed."""
    try:
        with open(path) as handle:
            return [line.strip() for line in handle if len(line.strip()) >= 16 and "-----" not in line]
    except (OSError, UnicodeDecodeError):
        return []


def _secret(value: str | None) -> Secret | None:
    return None if value is None else Secret(value)


def load_config(
    env: Mapping[str, str] | None = None,
    *,
    base_url: str | None = None,
    api_token: str | None = None,
    database_url: str | None = None,
) -> ProbeConfig:
    """Build the config from ``env`` (default ``os.environ``); keyword overrides win (pytest options)."""
    raw_env: Mapping[str, str] = os.environ if env is None else env
    env = resolve_environment(raw_env)
    for option, value in (("--base-url", base_url), ("--api-token", api_token), ("--database-url", database_url)):
        if value is not None:
            check_value(option, value)
    D = ProbeConfig()  # the defaults live in one place: the dataclass
    region = (_text(env, "NEW_RELIC_REGION") or D.new_relic_region).upper()
    if region not in ("US", "EU"):
        raise ConfigError("NEW_RELIC_REGION", "US or EU", env.get("NEW_RELIC_REGION"))

    def optional_seconds(name: str) -> float | None:
        return parse_seconds(env, name, 0.0) if _text(env, name) is not None else None

    base_source = "--base-url" if base_url else "PAYMENT_PROBE_BASE_URL"
    db_source = "--database-url" if database_url else "PAYMENT_PROBE_DATABASE_URL"
    client_cert = parse_pem_file(env, "PAYMENT_PROBE_CLIENT_CERT")
    client_key = parse_pem_file(env, "PAYMENT_PROBE_CLIENT_KEY")
    if client_key and not client_cert:
        raise ConfigError("PAYMENT_PROBE_CLIENT_CERT", "a readable PEM file (PAYMENT_PROBE_CLIENT_KEY is set)")
    warn_days = parse_days(env, "PAYMENT_PROBE_CERT_WARN_DAYS", D.cert_warn_days)
    fail_days = parse_days(env, "PAYMENT_PROBE_CERT_FAIL_DAYS", D.cert_fail_days)
    if fail_days >= warn_days:
        raise ConfigError("PAYMENT_PROBE_CERT_FAIL_DAYS", f"fewer days than PAYMENT_PROBE_CERT_WARN_DAYS ({warn_days})",
                          str(fail_days))
    ca_bundle = parse_pem_file(env, "PAYMENT_PROBE_CA_BUNDLE")
    try:
        checked_context(ca_bundle, client_cert, client_key)  # refused PEM: exit 2 now, not a red leg later
    except TLSConfigError as exc:
        raise ConfigError(exc.variable, "a PEM file OpenSSL accepts (certificate, key and CA bundle)") from None
    from synthetics.providers import PROVIDERS

    provider = (_text(env, "PAYMENT_PROBE_PROVIDER") or D.provider).lower()
    if provider not in PROVIDERS:
        raise ConfigError("PAYMENT_PROBE_PROVIDER", f"one of {', '.join(PROVIDERS)}", env.get("PAYMENT_PROBE_PROVIDER"))
    webhook_secret = _text(env, "PAYMENT_PROBE_WEBHOOK_SECRET") or (
        _text(env, "RAZORPAY_TEST_WEBHOOK_SECRET") if provider == "razorpay" else None)
    if provider == "standard" and webhook_secret is not None:
        from synthetics.providers.standard import key_bytes

        try:
            key_bytes(webhook_secret)
        except ValueError:
            raise ConfigError("PAYMENT_PROBE_WEBHOOK_SECRET", "a Standard Webhooks secret: whsec_ and base64") from None
    location = _text(env, "PAYMENT_PROBE_LOCATION") or D.location
    if not re.fullmatch(r"[a-z0-9-]{1,32}", location):
        raise ConfigError("PAYMENT_PROBE_LOCATION", "a location name of a-z, 0-9 and '-', at most 32 characters",
                          location)
    api_key, test_key = parse_provider_keys(env, provider)
    base = parse_http_url(base_source, base_url or _text(env, "PAYMENT_PROBE_BASE_URL"))
    webhook_path = parse_path(env, "PAYMENT_PROBE_WEBHOOK_PATH", PROVIDERS[provider].default_path)
    public_webhook_url = parse_http_url("PAYMENT_PROBE_PUBLIC_WEBHOOK_URL",
                                        _text(env, "PAYMENT_PROBE_PUBLIC_WEBHOOK_URL")) or (
        base + webhook_path if base else None)
    account = _text(env, "NEW_RELIC_ACCOUNT_ID")
    if account is not None and not account.isdigit():
        raise ConfigError("NEW_RELIC_ACCOUNT_ID", "a numeric New Relic account id", account)
    otlp_endpoint = parse_otlp_endpoint(raw_env)  # (variable, value): redacted, and where spans go
    config = ProbeConfig(
        enabled=parse_bool(env, "PAYMENT_PROBE_ENABLED", D.enabled),
        base_url=base,
        api_token=_secret(api_token or _text(env, "PAYMENT_PROBE_API_TOKEN")),
        database_url=_secret(parse_database_url(
            db_source, database_url or _text(env, "PAYMENT_PROBE_DATABASE_URL")
        )),
        webhook_secret=_secret(webhook_secret),
        test_plan_id_pro=_text(env, "PAYMENT_PROBE_TEST_PLAN_ID_PRO"),
        interval_seconds=optional_seconds("PAYMENT_PROBE_INTERVAL_SECONDS"),
        leg_intervals=parse_leg_intervals(env),
        legs=tuple(leg for leg in parse_legs(env) if applicable(leg, provider)),
        http_timeout_seconds=parse_seconds(env, "PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS", D.http_timeout_seconds),
        leg_timeout_seconds=parse_seconds(env, "PAYMENT_PROBE_LEG_TIMEOUT_SECONDS", D.leg_timeout_seconds),
        metrics_port=parse_port(env, "PAYMENT_PROBE_METRICS_PORT", D.metrics_port),
        metrics_host=_text(env, "PAYMENT_PROBE_METRICS_HOST") or D.metrics_host,
        new_relic_account_id=account,
        new_relic_insert_key=_secret(_text(env, "NEW_RELIC_INSERT_KEY")),
        new_relic_region=region,
        events_url=parse_http_url("PAYMENT_PROBE_EVENTS_URL", _text(env, "PAYMENT_PROBE_EVENTS_URL")),
        slow_seconds=optional_seconds("PAYMENT_PROBE_SLOW_SECONDS"),
        upgrade_slow_seconds=optional_seconds("PAYMENT_PROBE_UPGRADE_SLOW_SECONDS"),
        upgrade_wait_seconds=parse_seconds(env, "PAYMENT_PROBE_UPGRADE_WAIT_SECONDS", D.upgrade_wait_seconds),
        expected_tier=_text(env, "PAYMENT_PROBE_EXPECTED_TIER") or D.expected_tier,
        checkout_plan_id=_text(env, "PAYMENT_PROBE_CHECKOUT_PLAN_ID") or D.checkout_plan_id,
        webhook_path=webhook_path,
        environment=_text(env, "PAYMENT_PROBE_ENVIRONMENT"),
        audit_table=parse_identifier(env, "PAYMENT_PROBE_AUDIT_TABLE", D.audit_table),
        spool_dir=_text(env, "PAYMENT_PROBE_SPOOL_DIR") or default_spool_dir(env),
        ca_bundle=ca_bundle,
        client_cert=client_cert,
        client_key=client_key,
        cert_warn_days=warn_days,
        cert_fail_days=fail_days,
        provider=provider,
        cancelled_tier=_text(env, "PAYMENT_PROBE_CANCELLED_TIER") or D.cancelled_tier,
        location=location,
        provider_api_key=_secret(api_key),
        provider_test_key=_secret(test_key),
        provider_api_url=parse_http_url("PAYMENT_PROBE_PROVIDER_API_URL", _text(env, "PAYMENT_PROBE_PROVIDER_API_URL"))
        or PROVIDER_API_URLS.get(provider),
        public_webhook_url=public_webhook_url,
        razorpay_account_id=_text(env, "PAYMENT_PROBE_RAZORPAY_ACCOUNT_ID"),
        delivery_lag_seconds=parse_seconds(env, "PAYMENT_PROBE_DELIVERY_LAG_SECONDS", D.delivery_lag_seconds),
        roundtrip_wait_seconds=parse_seconds(env, "PAYMENT_PROBE_ROUNDTRIP_WAIT_SECONDS", D.roundtrip_wait_seconds),
        confirm_retries=parse_count(env, "PAYMENT_PROBE_CONFIRM_RETRIES", D.confirm_retries),
        confirm_delay_seconds=parse_seconds(env, "PAYMENT_PROBE_CONFIRM_DELAY_SECONDS", D.confirm_delay_seconds,
                                            zero_ok=True),
        replay_settle_seconds=parse_seconds(env, "PAYMENT_PROBE_REPLAY_SETTLE_SECONDS", D.replay_settle_seconds),
        otel_endpoint=_secret(otlp_endpoint[1] if otlp_endpoint else None),
        trace_export=trace_export_of(raw_env, otlp_endpoint),
        otel_headers=_secret(",".join(filter(None, (raw_env.get("OTEL_EXPORTER_OTLP_HEADERS"),
                                                    raw_env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS")))) or None),
    )
    check_cadence(config)
    return config
