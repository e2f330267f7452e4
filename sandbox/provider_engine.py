"""The sandbox as Stripe in TEST mode (SPEC 17): customers, subscriptions on the test price, the test card
``pm_card_visa``, and a delivery engine that posts every event it creates to the registered endpoint,
signed with that endpoint's secret, retrying a non-2xx with a backoff scaled to seconds and keeping the
event's ``pending_webhooks`` until one is acknowledged.

What ``provider_roundtrip`` drives: the provider, not the prober, starts the money path. Faults:
``provider_card_declined`` (the subscription is refused ``card_declined``), ``provider_secret_mismatch``
(deliveries signed with a secret the billing API does not hold), and the endpoint faults of
``sandbox.provider_api`` (disabled: nothing is delivered; wrong URL: deliveries go there).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import ssl
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROTATED_SECRET = "whsec_rotated_at_the_provider_only"
RETRY_SECONDS = (1.0, 2.0, 4.0, 8.0)  # Stripe's hours, scaled to seconds
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def _id(prefix: str) -> str:
    return f"{prefix}_1Sbx{secrets.token_hex(8)}"


def _form(body: bytes) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _metadata(form: dict[str, str]) -> dict[str, str]:
    return {k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[") and k.endswith("]")}


def _error(status: int, kind: str, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"type": kind, "code": code, "message": message}}


class StripeTestMode:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.lock = threading.Lock()
        self.customers: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.idempotent: dict[str, tuple[int, dict[str, Any]]] = {}
        self.deliveries: list[dict[str, Any]] = []  # every delivery attempt: event, url, status

    # ---- the API ------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: str, body: bytes, idempotency_key: str | None
               ) -> tuple[int, dict[str, Any]] | None:
        parts = path.strip("/").split("/")
        if parts[:2] == ["v1", "customers"] or parts[:2] == ["v1", "subscriptions"]:
            if idempotency_key and method == "POST":
                with self.lock:
                    if idempotency_key in self.idempotent:
                        return self.idempotent[idempotency_key]
            answer = self._route(method, parts, query, _form(body))
            if idempotency_key and method == "POST" and answer is not None:
                with self.lock:
                    self.idempotent[idempotency_key] = answer
            return answer
        return None

    def _route(self, method: str, parts: list[str], query: str,
               form: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        kind = parts[1]
        if kind == "customers" and len(parts) == 2 and method == "POST":
            return self.create_customer(form)
        if kind == "customers" and len(parts) == 2 and method == "GET":
            with self.lock:
                data = sorted(self.customers.values(), key=lambda c: -int(c["created"]))
            return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/customers"}
        if kind == "customers" and len(parts) == 3 and method == "DELETE":
            return self.delete_customer(parts[2])
        if kind == "subscriptions" and len(parts) == 2 and method == "POST":
            return self.create_subscription(form)
        if kind == "subscriptions" and len(parts) == 3 and method == "DELETE":
            return self.cancel_subscription(parts[2])
        return _error(404, "invalid_request_error", "resource_missing", "Unrecognized request URL")

    def create_customer(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        method = form.get("payment_method")
        if method is not None and method != "pm_card_visa":
            return _error(400, "invalid_request_error", "resource_missing", f"No such PaymentMethod: '{method}'")
        customer: dict[str, Any] = {
            "id": _id("cus"), "object": "customer", "created": int(time.time()), "livemode": False,
            "name": form.get("name"), "metadata": _metadata(form),
                    "invoice_settings": {
                        "default_payment_method": form.get("invoice_settings[default_payment_method]")}}
        with self.lock:
            self.customers[customer["id"]] = customer
        return 200, customer

    def delete_customer(self, customer_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            customer = self.customers.pop(customer_id, None)
            ended = [s for s in self.subscriptions.values() if s["customer"] == customer_id and s["status"] == "active"]
        if customer is None:
            return _error(404, "invalid_request_error", "resource_missing", f"No such customer: '{customer_id}'")
        for subscription in ended:  # deleting a customer ends its subscriptions, each announced
            self._end(subscription)
        return 200, {"id": customer_id, "object": "customer", "deleted": True}

    def create_subscription(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        settings = self.server.settings
        with self.lock:
            customer = self.customers.get(form.get("customer", ""))
        if customer is None:
            return _error(400, "invalid_request_error", "resource_missing", "No such customer")
        price = form.get("items[0][price]", "")
        if price != settings.plan_id_pro:
            return _error(400, "invalid_request_error", "resource_missing", f"No such price: '{price}'")
        if not customer["invoice_settings"]["default_payment_method"]:
            return _error(400, "invalid_request_error", "resource_missing", "This customer has no payment method")
        if "provider_card_declined" in self.server.faults:
            return _error(402, "card_error", "card_declined", "Your card was declined.")
        metadata = _metadata(form)
        subscription = {"id": _id("sub"), "object": "subscription", "customer": customer["id"], "status": "active",
                        "created": int(time.time()), "livemode": False, "metadata": metadata,
                        "items": {"object": "list", "data": [{"object": "subscription_item",
                                                              "price": {"id": price, "object": "price"}}]}}
        with self.lock:
            self.subscriptions[subscription["id"]] = subscription
        invoice = {"id": _id("in"), "object": "invoice", "status": "paid", "customer": customer["id"],
                   "livemode": False, "metadata": {},
                   "parent": {"type": "subscription_details",
                              "subscription_details": {"subscription": subscription["id"], "metadata": metadata}},
                   "subscription": subscription["id"], "subscription_details": {"metadata": metadata},
                   "lines": {"object": "list", "data": [{"object": "line_item",
                                                         "price": {"id": price, "object": "price"}}]}}
        self._emit("invoice.paid", invoice)
        return 200, subscription

    def cancel_subscription(self, subscription_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            return _error(404, "invalid_request_error", "resource_missing",
                          f"No such subscription: '{subscription_id}'")
        if subscription["status"] == "active":
            self._end(subscription)
        return 200, subscription

    def _end(self, subscription: dict[str, Any]) -> None:
        subscription["status"] = "canceled"
        self._emit("customer.subscription.deleted", dict(subscription))

    # ---- events and their delivery -------------------------------------------------------------
    def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        disabled = "provider_endpoint_disabled" in self.server.faults  # a disabled endpoint is not delivered to
        event = {"id": _id("evt"), "object": "event", "api_version": "2025-03-31.basil", "created": int(time.time()),
                 "livemode": False, "pending_webhooks": 0 if disabled else 1, "type": kind,
                 "data": {"object": obj}}
        with self.lock:
            self.events.append(event)
        if not disabled:
            threading.Thread(target=self._deliver, args=(event,), name="sandbox-provider", daemon=True).start()

    def listed_events(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events)

    def _deliver(self, event: dict[str, Any]) -> None:
        from sandbox.provider_api import registered_url

        body = json.dumps({k: v for k, v in event.items()}).encode()
        for delay in (0.0, *RETRY_SECONDS):
            if delay and self.server.stopping.wait(delay):
                return
            url = registered_url(self.server)
            secret = ROTATED_SECRET if "provider_secret_mismatch" in self.server.faults \
                else self.server.settings.webhook_secret
            status = self._post(url, body, secret)
            with self.lock:
                self.deliveries.append({"event": event["id"], "type": event["type"], "url": url, "status": status})
            if status is not None and 200 <= status < 300:
                with self.lock:
                    event["pending_webhooks"] = 0
                return

    def _post(self, url: str, body: bytes, secret: str) -> int | None:
        stamp = int(time.time())
        signature = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        parts = urlsplit(url)
        try:
            if parts.scheme == "https":
                context = ssl.create_default_context()
                tls = self.server.settings.tls
                if tls is not None:
                    context.load_verify_locations(cafile=str(tls.ca_path))
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    parts.hostname or "", parts.port or 443, timeout=5, context=context)
            else:
                conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=5)
            try:
                conn.request("POST", parts.path or "/", body=body, headers={
                    "Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
                    "Stripe-Signature": f"t={stamp},v1={signature}"})
                return conn.getresponse().status
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            return None
