"""The three webhook schemes as the sandbox and the prober both speak them (SPEC 14)."""

from __future__ import annotations

from typing import Any

SECRETS = {"razorpay": "whsec_tests_5f1e0c", "stripe": "whsec_tests_stripe_9a8b7c",
           "standard": "whsec_dGVzdHMgc3RhbmRhcmQgc2VjcmV0IDVmMWUwYw=="}
PATHS = {"razorpay": "/razorpay/webhook", "stripe": "/stripe/webhook", "standard": "/webhooks"}
PROVIDERS = list(SECRETS)


def speak(probe: Any, provider: str) -> dict[str, str]:
    """Switch the probe's sandbox to ``provider`` and return the prober's matching settings."""
    settings = probe.sandbox.settings
    settings.provider, settings.webhook_path, settings.webhook_secret = provider, PATHS[provider], SECRETS[provider]
    return {"PAYMENT_PROBE_PROVIDER": provider, "PAYMENT_PROBE_WEBHOOK_SECRET": SECRETS[provider],
            "PAYMENT_PROBE_REPLAY_SETTLE_SECONDS": "1"}
