"""provider_webhook_health (SPEC 17): the webhook endpoint as the payment provider sees it."""

from __future__ import annotations

import pytest

from synthetics import reasons
from synthetics.config import ProbeConfig
from synthetics.failures import degrade
from synthetics.plugin import LegRecord
from synthetics.provider_health import Provider, check_razorpay, check_stripe


@pytest.mark.prod_safe
def test_provider_webhook_health(probe_config: ProbeConfig, leg_record: LegRecord) -> None:
    config = probe_config
    if not config.provider_api_key:
        degrade(reasons.config_missing("PAYMENT_PROBE_PROVIDER_API_KEY"))
    if config.provider == "razorpay" and not config.razorpay_account_id:
        degrade(reasons.config_missing("PAYMENT_PROBE_RAZORPAY_ACCOUNT_ID"),
                "Razorpay's webhook API exists for partners only: the merchant account it reads")
    if not config.public_webhook_url:
        degrade(reasons.config_missing("PAYMENT_PROBE_PUBLIC_WEBHOOK_URL"))
    provider = Provider(config, leg_record.add_phases)
    if config.provider == "stripe":
        check_stripe(config, provider, leg_record.note)
    else:
        check_razorpay(config, provider, leg_record.note)
