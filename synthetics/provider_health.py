"""provider_webhook_health (SPEC 17): the webhook endpoint as the payment provider sees it.

Every self-signed leg passes while the provider's own deliveries fail: a rotated secret, an endpoint
the provider disabled after days of failures, one registered at an old URL, an event type left
unsubscribed. This asks the provider, with a read-only key, about the endpoint the public webhook URL
is registered as, and about the events it could not deliver.

The provider's own trouble (a refused key, a rate limit, an outage, a body that is not JSON) is
``degraded``: the leg could not look, which is the prober's problem, not the billing API's.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from synthetics import reasons, wire
from synthetics.config import ProbeConfig
from synthetics.failures import LegFailed, degrade
from synthetics.http import MAX_BODY_BYTES, USER_AGENT
from synthetics.secret import Secret
from synthetics.tls import provider_context

MAX_PAGES = 10
EVENTS_WINDOW_SECONDS = 24 * 3600
# The event types the money path needs delivered, per provider (SPEC 14): the upgrade and the cancel.
NEEDED_EVENTS = {
    "stripe": ("invoice.paid", "customer.subscription.deleted"),
    "razorpay": ("subscription.charged", "subscription.cancelled"),
}


class Provider:
    """The provider's API through the one-deadline client, with the leg's HTTP timeout. The provider's own
    trouble (a refused key, a rate limit, a 5xx, a timeout, a body that is not JSON) ends the leg degraded."""

    def __init__(self, config: ProbeConfig, on_phases: Any, key: Secret | None = None) -> None:
        assert config.provider_api_url and (key or config.provider_api_key)
        self.base = config.provider_api_url
        self.key: Secret = key or config.provider_api_key  # type: ignore[assignment]
        self.kind = config.provider
        self.timeout = config.http_timeout_seconds
        self.context = provider_context(config.ca_bundle) if self.base.startswith("https://") else None
        self.on_phases = on_phases

    def request(self, method: str, path: str, *, query: Mapping[str, str | int] | None = None,
                form: Mapping[str, str] | None = None, idempotency_key: str | None = None) -> tuple[int, Any]:
        """The status and the parsed body of any answer the provider meant (2xx and its refusals)."""
        url = self.base + path + (f"?{urlencode(query)}" if query else "")
        body = urlencode(form).encode() if form is not None else None
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": "identity",
                   "X-Synthetic-Probe": "payment-probe"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        what = f"{method} {path}"
        try:
            headers["Authorization"] = self._authorization()
            response = wire.exchange(method, url, headers=headers, body=body, timeout=self.timeout,
                                     context=self.context, max_body=MAX_BODY_BYTES)
        except wire.WireError as exc:
            self.on_phases(exc.phases, exc.answered)
            degrade(reasons.provider_unavailable(exc.kind), f"{what}: {exc.detail}")
        finally:
            headers.clear()  # the key never outlives the exchange
        self.on_phases(response.phases, True)
        status = response.status
        if status in (401, 403):
            degrade(reasons.provider_auth(status), f"{what}: the provider refused the key ({_error(response.body)})")
        if status == 429:
            degrade(reasons.PROVIDER_RATE_LIMITED, f"{what}: HTTP 429")
        if status >= 500:
            degrade(reasons.provider_unavailable(f"http_status_{status}"), f"{what}: {_error(response.body)}")
        try:
            return status, json.loads(response.body)
        except (ValueError, RecursionError):
            degrade(reasons.provider_unavailable(reasons.NOT_JSON), f"{what}: HTTP {status} body is not JSON")

    def get(self, path: str, query: Mapping[str, str | int] | None = None) -> Any:
        """A read that must succeed: any other answer (a 404 of a wrong PAYMENT_PROBE_PROVIDER_API_URL) is
        the provider's trouble too."""
        status, answer = self.request("GET", path, query=query)
        if not 200 <= status < 300:
            degrade(reasons.provider_unavailable(f"http_status_{status}"),
                    f"GET {path}: {_error(json.dumps(answer).encode())}")
        return answer

    def _authorization(self) -> str:
        key = self.key.reveal()
        if self.kind == "razorpay":  # key_id:key_secret, HTTP Basic
            return "Basic " + base64.b64encode(key.encode()).decode()
        return "Bearer " + key

    def stripe_list(self, path: str, query: Mapping[str, str | int]) -> Iterator[dict[str, Any]]:
        """Every object of a Stripe list, following ``has_more`` / ``starting_after`` (at most 10 pages)."""
        after: str | None = None
        for _page in range(MAX_PAGES):
            page = self.get(path, {**query, **({"starting_after": after} if after else {})})
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                degrade(reasons.provider_unavailable("bad_shape"), f"GET {path}: no list in the answer")
            objects = [item for item in data if isinstance(item, dict)]
            yield from objects
            if not page.get("has_more") or not objects:
                return
            after = str(objects[-1].get("id", ""))


def _error(body: bytes) -> str:
    """The provider's own error message (Stripe's ``{"error": {...}}``), short; never the key."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError, RecursionError):
        return "no error body"
    if isinstance(error, dict):
        return str(error.get("code") or error.get("type") or error.get("description") or "error")[:80]
    return str(error)[:80] if error else "no error body"


def same_url(registered: object, public: str) -> bool:
    """The endpoint's URL is the public webhook URL, ignoring one trailing ``/``."""
    return isinstance(registered, str) and registered.removesuffix("/") == public.removesuffix("/")


def _host(url: object) -> str:
    return urlsplit(url).hostname or "?" if isinstance(url, str) else "?"


def check_stripe(config: ProbeConfig, provider: Provider, note: Any) -> None:
    assert config.provider_api_key and config.public_webhook_url
    live = config.provider_api_key.reveal().startswith(("rk_live_", "sk_live_"))
    public = config.public_webhook_url
    endpoints = list(provider.stripe_list("/v1/webhook_endpoints", {"limit": 100}))
    mine = [e for e in endpoints if same_url(e.get("url"), public) and bool(e.get("livemode")) == live]
    if not mine:
        hosts = sorted({_host(e.get("url")) for e in endpoints})
        raise LegFailed(reasons.ENDPOINT_MISSING,
                        f"no {'live' if live else 'test'}-mode webhook endpoint at the public "
                        f"webhook URL; {len(endpoints)} registered (hosts: {', '.join(hosts) or 'none'})")
    endpoint = next((e for e in mine if e.get("status") == "enabled"), mine[0])
    enabled = [str(t) for t in endpoint.get("enabled_events") or [] if isinstance(t, str)]
    note("endpoint_id", str(endpoint.get("id", "")))
    note("endpoint_status", str(endpoint.get("status", "")))
    note("api_version", str(endpoint.get("api_version") or ""))
    note("subscribed_types", len(enabled))
    if endpoint.get("status") != "enabled":
        raise LegFailed(reasons.ENDPOINT_DISABLED, f"the provider has the endpoint {endpoint.get('id')} "
                        f"{endpoint.get('status')}: no payment event reaches the billing API", severity="critical")
    everything = enabled == ["*"]
    missing = [t for t in NEEDED_EVENTS["stripe"] if not everything and t not in enabled]
    if missing:
        raise LegFailed(reasons.EVENTS_UNSUBSCRIBED, f"the endpoint is not subscribed to {', '.join(missing)}")
    now = time.time()
    undelivered = [e for e in provider.stripe_list("/v1/events", {
        "delivery_success": "false", "created[gte]": int(now - EVENTS_WINDOW_SECONDS), "limit": 100})
        if everything or e.get("type") in enabled]
    ages = [(now - float(e.get("created") or now), str(e.get("type"))) for e in undelivered]
    oldest = max(ages, default=(0.0, ""))
    note("undelivered_events", len(undelivered))
    note("oldest_undelivered_seconds", round(oldest[0], 1))
    failing = [age for age, _type in ages if age > config.delivery_lag_seconds]
    if failing:
        def shares(other: dict[str, Any]) -> bool:
            types = other.get("enabled_events") or []
            return everything or types == ["*"] or bool(set(enabled) & set(types))

        sharing = sum(1 for e in endpoints if e is not endpoint and e.get("status") == "enabled" and shares(e))
        raise LegFailed(reasons.DELIVERIES_FAILING, f"{len(failing)} event(s) undelivered for more than "
                        f"{config.delivery_lag_seconds:g} s, the oldest a {oldest[1]} {oldest[0]:.0f} s old "
                        f"(Stripe reports delivery for the whole account: {sharing} other enabled endpoint(s) "
                        "share those event types)")


def check_razorpay(config: ProbeConfig, provider: Provider, note: Any) -> None:
    assert config.public_webhook_url
    account = config.razorpay_account_id
    answer = provider.get(f"/v2/accounts/{account}/webhooks")
    items = answer.get("items") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        degrade(reasons.provider_unavailable("bad_shape"), "GET webhooks: no items in the answer")
    hooks = [h for h in items if isinstance(h, dict)]
    mine = [h for h in hooks if same_url(h.get("url"), config.public_webhook_url)]
    if not mine:
        hosts = sorted({_host(h.get("url")) for h in hooks})
        raise LegFailed(reasons.ENDPOINT_MISSING, f"no webhook of the account at the public webhook URL; {len(hooks)} "
                                            f"registered (hosts: {', '.join(hosts) or 'none'})")
    hook = next((h for h in mine if h.get("active") is True), mine[0])
    events = hook.get("events")
    # Razorpay lists a webhook's events as names, or as a map of name -> enabled.
    enabled = [str(n) for n, on in events.items() if on] if isinstance(events, dict) else \
        [str(n) for n in events or [] if isinstance(n, str)]
    note("endpoint_id", str(hook.get("id", "")))
    note("endpoint_status", "active" if hook.get("active") is True else "inactive")
    note("subscribed_types", len(enabled))
    if hook.get("active") is not True:
        raise LegFailed(reasons.ENDPOINT_DISABLED,
                        f"the provider has the webhook {hook.get('id')} inactive: no payment "
                        "event reaches the billing API", severity="critical")
    missing = [t for t in NEEDED_EVENTS["razorpay"] if t not in enabled]
    if missing:
        raise LegFailed(reasons.EVENTS_UNSUBSCRIBED, f"the webhook is not subscribed to {', '.join(missing)}")
