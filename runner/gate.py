"""``payment-probe gate``: the legs as a CI gate, from the installed package, in any directory (SPEC 19).

A deploy pipeline runs this against staging before it promotes a build. It is plain pytest on the
installed legs (JUnit XML, ``--probe-json``, ``-n``, ``-k`` all work), with the verdict a gate needs:

- exit 0 when every selected leg passed (a leg skipped for configuration it was not given — no
  provider key, no database — does not fail it, and is named);
- exit 1 when a leg failed or, by default, degraded because of what the API answered (slow,
  401/403/429, ``not_https``): an expired staging token must not let a deploy through
  (``--fail-on fail`` lets degraded legs pass);
- exit 2 on bad configuration: no base URL is bad configuration, never "5 skipped".

The last line always says why.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Generator, Sequence
from typing import Any

import pytest

from runner.legrun import installed_legs_args
from runner.signals.outcome import Outcome
from runner.signals.rules import degraded_by_the_api, not_configured
from synthetics.config import ConfigError, load_config

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
PREFIX = "payment-probe gate"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="payment-probe gate", description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Any other option goes to pytest as it is (e.g. --junitxml PATH, --probe-json PATH, -n 2, -k EXPR).")
    parser.add_argument("--base-url", default=None, help="the billing API (default PAYMENT_PROBE_BASE_URL)")
    parser.add_argument("--fail-on", choices=("degraded", "fail"), default="degraded",
                        help="degraded (default): a leg degraded by the API's answer fails the gate; fail: only a "
                             "failed leg does")
    parser.add_argument("-m", dest="markers", default="prod_safe", metavar="EXPR",
                        help="which legs, as a pytest marker expression (default prod_safe)")
    return parser


class _Verdict:
    """Reads the session's outcomes off the signals plugin once it has decided them all."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, Any, None]:
        yield
        from runner.signals.controller import SignalsPlugin

        for plugin in session.config.pluginmanager.get_plugins():
            if isinstance(plugin, SignalsPlugin):
                self.outcomes = list(plugin.outcomes)


def _say(line: str) -> None:
    print(f"{PREFIX}: {line}", file=sys.stderr, flush=True)


def run_gate(argv: Sequence[str]) -> int:
    args, rest = build_parser().parse_known_args(list(argv))
    base_url = args.base_url or os.environ.get("PAYMENT_PROBE_BASE_URL", "").strip() or None
    if not base_url:
        _say("PAYMENT_PROBE_BASE_URL: expected an absolute http:// or https:// URL (or --base-url): with no "
             "billing API to probe, every leg would be skipped and the gate would check nothing")
        return EXIT_CONFIG
    try:
        load_config(base_url=base_url)  # exit 2 now for any bad value, with the variable named
    except ConfigError as exc:
        _say(str(exc))
        return EXIT_CONFIG
    verdict = _Verdict()
    pytest_args = [*installed_legs_args(), "-p", "no:cacheprovider", "-m", args.markers, "--base-url", base_url,
                   "--probe-fail-on", args.fail_on, *rest]
    code = int(pytest.main(pytest_args, plugins=[verdict]))
    if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.INTERRUPTED):
        _say(f"pytest could not run the legs (exit {code}); see the error above")
        return EXIT_CONFIG
    outcomes = verdict.outcomes
    if not outcomes:
        _say(f"no leg matches -m {args.markers!r}: nothing was checked")
        return EXIT_CONFIG
    skipped = [o for o in outcomes if not_configured(o)]
    if skipped:
        _say("not run (no configuration for them): " + ", ".join(f"{o.leg} ({o.reason})" for o in skipped))
    failed = [o for o in outcomes if o.result == "fail"]
    degraded = [o for o in outcomes if degraded_by_the_api(o)]
    ran = len(outcomes) - len(skipped)
    if failed:
        _say("FAILED: " + "; ".join(f"{o.leg} fail ({o.severity}) {o.reason}" for o in failed))
        return EXIT_FAILED
    if degraded and args.fail_on == "degraded":
        _say("FAILED on degraded (--fail-on fail would let it pass): "
             + "; ".join(f"{o.leg} degraded {o.reason}" for o in degraded))
        return EXIT_FAILED
    passed = sum(1 for o in outcomes if o.result == "pass")
    _say(f"passed: {passed} of {ran} leg(s) run passed" + (f", {len(degraded)} degraded" if degraded else "")
         + (f", {len(skipped)} not run" if skipped else ""))
    return EXIT_OK
