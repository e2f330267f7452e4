"""The three reachability legs: checkout answers, billing state and invoices load."""

from __future__ import annotations

import json

import pytest

from synthetics.classify import judge_reachability
from synthetics.config import ProbeConfig
from synthetics.http import ProbeClient

CHECKOUT_PATH = "/api/v1/billing/checkout"
BILLING_PATH = "/api/v1/billing"
INVOICES_PATH = "/api/v1/billing/invoices"


@pytest.mark.prod_safe
def test_checkout_reachable(probe_http: ProbeClient, probe_config: ProbeConfig) -> None:
    body = json.dumps({"plan_id": probe_config.checkout_plan_id, "synthetic": True}).encode()
    judge_reachability(probe_http.request("POST", CHECKOUT_PATH, body=body), "object")


@pytest.mark.prod_safe
def test_billing_state(probe_http: ProbeClient) -> None:
    judge_reachability(probe_http.request("GET", BILLING_PATH), "object")


@pytest.mark.prod_safe
def test_invoices_reachable(probe_http: ProbeClient) -> None:
    judge_reachability(probe_http.request("GET", INVOICES_PATH), "object_or_array")
