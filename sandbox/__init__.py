"""The sandbox: payment-probe's own reference billing API (SPEC section 7). Imports nothing of the prober.

It ships in the wheel for ``pip install 'payment-probe[sandbox]'`` (the demo, a billing API under
development), and refuses to load without that extra: a production install never serves it.
"""

import importlib.util

if importlib.util.find_spec("trustme") is None:
    raise ImportError("the sandbox (a fault-injecting fake billing API) needs the [sandbox] extra: "
                      "pip install 'payment-probe[sandbox]'")
