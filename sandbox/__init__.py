"""The sandbox: payment-probe's own reference billing API (SPEC section 7). Imports nothing of the prober."""
