"""The sandbox as the payment provider (SPEC 17): the part of Stripe's API and of Razorpay's partner
webhooks API that ``provider_webhook_health`` reads, with the providers' object shapes.

Stripe (``--provider stripe``): ``GET /v1/webhook_endpoints`` and ``GET /v1/events`` (filtered by
``delivery_success``, ``type``, ``created[gte]``), list envelopes with ``has_more`` and
``starting_after``, errors as ``{"error": {"type", "code", "message"}}``, behind Bearer keys.
Razorpay (``--provider razorpay``): ``GET /v2/accounts/{account_id}/webhooks`` behind HTTP Basic.

The registered endpoint is the sandbox's own webhook unless ``provider_webhook_url`` names another.
Besides it the provider holds an unrelated endpoint elsewhere, a live-mode one at the same URL
(disabled: a test key must not see it) and an undelivered event of a type the endpoint does not
subscribe to: what a correct prober must look past. Faults: ``provider_endpoint_disabled``,
``provider_wrong_url``, ``provider_events_unsubscribed``, ``provider_deliveries_failing``, and the
``provider_status_<NNN>`` / ``provider_delay_<ms>`` families.

Like the rest of the sandbox it shares no code with the prober.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from typing import Any
from urllib.parse import parse_qs

API_VERSION = "2025-03-31.basil"
OTHER_URL = "https://analytics.example.com/hooks/stripe"


def _stripe_error(status: int, kind: str, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"type": kind, "code": code, "message": message}}


def _razorpay_error(status: int, description: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": "BAD_REQUEST_ERROR", "description": description}}


def registered_url(server: Any) -> str:
    faults = server.faults
    url = server.settings.provider_webhook_url or server.url + server.settings.webhook_path
    return url.replace(server.settings.webhook_path, "/v0" + server.settings.webhook_path) \
        if "provider_wrong_url" in faults else url


def stripe_endpoints(server: Any) -> list[dict[str, Any]]:
    faults = server.faults
    events = ["invoice.paid", "customer.subscription.deleted", "customer.subscription.updated"]
    if "provider_events_unsubscribed" in faults:
        events.remove("customer.subscription.deleted")
    created = int(server.started_at)
    main: dict[str, Any] = {"id": "we_1SandboxMain0001", "object": "webhook_endpoint", "api_version": API_VERSION,
            "application": None, "created": created, "description": "billing API", "enabled_events": events,
            "livemode": False, "metadata": {}, "status": "disabled" if "provider_endpoint_disabled" in faults
            else "enabled", "url": registered_url(server)}
    other = {**main, "id": "we_1SandboxOther002", "description": "analytics", "enabled_events": ["charge.refunded"],
             "status": "enabled", "url": OTHER_URL}
    live = {**main, "id": "we_1SandboxLive0003", "description": "live mode", "livemode": True, "status": "disabled",
            "url": registered_url(server)}
    return [other, live, main]


def stripe_events(server: Any, now: float) -> list[dict[str, Any]]:
    def event(suffix: str, kind: str, age: float, pending: int) -> dict[str, Any]:
        return {"id": f"evt_1Sandbox{suffix}", "object": "event", "api_version": API_VERSION,
                "created": int(now - age), "livemode": False, "pending_webhooks": pending, "type": kind,
                "data": {"object": {"object": "invoice" if kind == "invoice.paid" else "charge"}}}

    found = [event("Delivered001", "invoice.paid", 600, 0),
             event("OtherType002", "charge.refunded", 7200, 1)]  # undelivered, but not the endpoint's type
    if "provider_deliveries_failing" in server.faults:
        found += [event("Failing00003", "invoice.paid", 3600, 1),  # failing for an hour
                  event("InFlight0004", "invoice.paid", 10, 1)]  # in flight
    return sorted(found, key=lambda e: -int(e["created"]))


def _page(objects: list[dict[str, Any]], query: dict[str, list[str]], page_size: int, url: str) -> dict[str, Any]:
    after = (query.get("starting_after") or [""])[0]
    start = next((i + 1 for i, o in enumerate(objects) if o["id"] == after), 0) if after else 0
    limit = max(1, min(100, int((query.get("limit") or ["10"])[0]), page_size))
    data = objects[start:start + limit]
    return {"object": "list", "data": data, "has_more": start + limit < len(objects), "url": url}


def handle_stripe(server: Any, headers: Any, path: str, raw_query: str) -> tuple[int, dict[str, Any]] | None:
    """The answer to a Stripe API GET, or None when the path is not one it serves."""
    if path not in ("/v1/webhook_endpoints", "/v1/events", "/v1/customers"):
        return None
    if not _stripe_key(server, headers, write=False):
        return _stripe_error(401, "invalid_request_error", "api_key_invalid", "Invalid API Key provided")
    if path == "/v1/customers":  # the TEST key's (the read-only key has no Customers permission)
        if not _stripe_key(server, headers, write=True):
            return _stripe_error(403, "invalid_request_error", "permission_denied", "Missing permission")
        return server.provider_engine.handle("GET", path, raw_query, b"", None)
    query = parse_qs(raw_query)
    size = server.settings.provider_page_size
    if path == "/v1/webhook_endpoints":
        return 200, _page(stripe_endpoints(server), query, size, path)
    now = time.time()
    events = sorted(stripe_events(server, now) + server.provider_engine.listed_events(),
                    key=lambda e: -int(e["created"]))
    if (query.get("delivery_success") or [""])[0] == "false":
        events = [e for e in events if e["pending_webhooks"] > 0]
    elif (query.get("delivery_success") or [""])[0] == "true":
        events = [e for e in events if e["pending_webhooks"] == 0]
    if query.get("type"):
        events = [e for e in events if e["type"] == query["type"][0]]
    if query.get("created[gte]"):
        events = [e for e in events if e["created"] >= int(query["created[gte]"][0])]
    return 200, _page(events, query, size, path)


def _stripe_key(server: Any, headers: Any, *, write: bool) -> bool:
    """The Bearer key is the sandbox's read-only key (reads only) or its TEST key (reads and writes)."""
    keys = (server.settings.provider_test_key,) if write else (server.settings.provider_api_key,
                                                                 server.settings.provider_test_key)
    given = headers.get("Authorization", "")
    return any(k and hmac.compare_digest(given.encode(), f"Bearer {k}".encode()) for k in keys)


def _stripe_write(server: Any, headers: Any, method: str, path: str, raw_query: str,
                  body: bytes) -> tuple[int, dict[str, Any]]:
    if not _stripe_key(server, headers, write=False):
        return _stripe_error(401, "invalid_request_error", "api_key_invalid", "Invalid API Key provided")
    if not _stripe_key(server, headers, write=True):
        return _stripe_error(403, "invalid_request_error", "permission_denied", "The key has no write permission")
    answer = server.provider_engine.handle(method, path, raw_query, body, headers.get("Idempotency-Key"))
    return answer or _stripe_error(404, "invalid_request_error", "resource_missing", "Unrecognized request URL")


def handle_razorpay(server: Any, headers: Any, path: str) -> tuple[int, dict[str, Any]] | None:
    """The answer to a Razorpay partner webhooks GET, or None when the path is not one it serves."""
    parts = path.strip("/").split("/")
    if len(parts) != 4 or parts[:2] != ["v2", "accounts"] or parts[3] != "webhooks":
        return None
    expected = "Basic " + base64.b64encode((server.settings.provider_api_key or "").encode()).decode()
    if not hmac.compare_digest(headers.get("Authorization", "").encode(), expected.encode()):
        return _razorpay_error(401, "The api key provided is invalid")
    if parts[2] != server.settings.razorpay_account_id:
        return _razorpay_error(400, "The id provided does not exist")
    faults = server.faults
    events = ["subscription.charged", "subscription.cancelled", "payment.captured"]
    if "provider_events_unsubscribed" in faults:
        events.remove("subscription.cancelled")
    hook = {"id": "HKsandbox0000001", "created_at": int(server.started_at), "updated_at": int(server.started_at),
            "owner_id": parts[2], "owner_type": "merchant", "context": [], "disabled_at": 0,
            "url": registered_url(server), "alert_email": "billing@example.com", "secret_exists": True,
            "entity": "webhook", "active": "provider_endpoint_disabled" not in faults, "events": events}
    other = {**hook, "id": "HKsandbox0000002", "url": OTHER_URL, "events": ["payment.failed"], "active": True}
    return 200, {"entity": "collection", "count": 2, "items": [other, hook]}


def respond(handler: Any, path: str, raw_query: str, method: str = "GET", body: bytes = b"") -> bool:
    """Serve a provider API request on ``handler``; False when ``path`` is not the provider's."""
    server = handler.server
    provider = server.settings.provider
    answer: tuple[int, dict[str, Any]] | None = None
    if provider == "stripe" and path.startswith("/v1/") and method != "GET":
        answer = _stripe_write(server, handler.headers, method, path, raw_query, body)
    elif provider == "stripe" and path.startswith("/v1/"):
        answer = handle_stripe(server, handler.headers, path, raw_query) or \
            _stripe_error(404, "invalid_request_error", "resource_missing", "Unrecognized request URL")
    elif provider == "razorpay" and path.startswith("/v2/"):
        answer = handle_razorpay(server, handler.headers, path) or \
            _razorpay_error(404, "The requested URL was not found")
    if answer is None:
        return False
    faults = server.faults
    delay = faults.delay_ms_for("provider")
    if delay:
        server.stopping.wait(delay / 1000)
    status = faults.status_for("provider")
    if status is not None:
        answer = (status, {"error": {"type": "api_error", "code": f"sandbox_status_{status}",
                                     "message": "injected", "description": "injected"}})
    handler._send(answer[0], json.dumps(answer[1]).encode())
    return True
