"""The reason vocabulary is closed (SPEC 1, 10): every reason comes from ``synthetics.reasons``.

Like ``test_registry`` closes the legs, this closes the reasons: a leg, the client, the wire or the
plugin that raises with a reason spelled anywhere but the vocabulary fails here, by file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from synthetics import reasons

from conftest import REPO

# Where a reason is the first argument (or ``reason=``): a leg's failure, a degrade, a wire error kind.
RAISERS = {"LegFailed", "degrade", "WireError", "_refuse_acceptance"}
SPELLED = (ast.Constant, ast.JoinedStr, ast.BinOp)  # "x", f"x:{n}", "x:" + n


def _spelled(node: ast.expr) -> bool:
    return isinstance(node, SPELLED) and not (isinstance(node, ast.Constant) and not isinstance(node.value, str))


def _spelled_reasons(path: Path, root: Path = REPO) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            args = [*node.args[:1]] if name in RAISERS else []
            args += [k.value for k in node.keywords if k.arg == "reason"]
            found += [f"{path.relative_to(root)}:{a.lineno}: {ast.unparse(a)}" for a in args if _spelled(a)]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):  # a default reason is spelled too
            arguments = node.args.args[-len(node.args.defaults):] if node.args.defaults else []
            found += [f"{path.relative_to(root)}:{d.lineno}: {ast.unparse(d)}"
                      for a, d in zip(arguments, node.args.defaults, strict=True) if a.arg == "reason" and _spelled(d)]
    return found


def test_no_code_spells_a_reason_outside_the_vocabulary() -> None:
    sources = [p for folder in ("synthetics", "runner") for p in sorted((REPO / folder).rglob("*.py"))
               if p.name != "reasons.py"]
    assert len(sources) > 40
    assert [hit for path in sources for hit in _spelled_reasons(path)] == []


def test_the_closing_check_catches_a_spelled_reason(tmp_path: Path) -> None:
    """The scan itself can fail: each way of spelling a reason is found."""
    leg = tmp_path / "spelled.py"
    leg.write_text('def f(status, reason="tier_not_flipped"):\n'
                   '    raise LegFailed("made_up")\n'
                   '    raise LegFailed(f"http_status:{status}")\n'
                   '    degrade("config_missing:" + "X")\n'
                   '    expect_tier(1, 2, 3, reason="cancel_not_applied")\n')
    assert [hit.split(": ", 1)[1] for hit in _spelled_reasons(leg, tmp_path)] == [
        "'tier_not_flipped'", "'made_up'", "f'http_status:{status}'", "'config_missing:' + 'X'", "'cancel_not_applied'"]


SPEC_EXAMPLES = (  # SPEC section 1's examples, and the reasons sections 2, 10, 14 and 17 name
    "ok", "slow", "config_missing:RAZORPAY_TEST_WEBHOOK_SECRET", "http_status:503", "not_json", "timeout",
    "connection_error", "unsigned_accepted", "forged_accepted", "wrong_rejection", "tier_not_flipped",
    "webhook_status:500", "reap_failed", "protocol_error", "stale_accepted", "replay_applied", "cancel_not_applied",
    "probe_error:KeyError", "redirect:301", "mint_failed", "cert_expiring:5d", "tls_error:expired", "not_https",
    "http_status:304", "endpoint_missing", "endpoint_disabled", "events_unsubscribed", "deliveries_failing",
    "provider_auth:401", "provider_rate_limited", "provider_unavailable:timeout", "delivery_missing",
    "delivery_rejected", "provider_rejected:card_declined",
)


@pytest.mark.parametrize("reason", SPEC_EXAMPLES)
def test_the_spec_reasons_are_in_the_vocabulary(reason: str) -> None:
    assert reasons.known(reason)


@pytest.mark.parametrize("reason", ["made_up", "http_status", "ok:1", "http_status:5 03", "Timeout",
                                    "tls_error:a:b", "nope:401", ""])
def test_anything_else_is_not(reason: str) -> None:
    assert not reasons.known(reason)


def test_every_word_is_one_token_and_every_constructor_makes_a_known_reason() -> None:
    assert all(reasons.TOKEN.match(word) and ":" not in word for word in reasons.WORDS - {reasons.UNKNOWN})
    made = [reasons.config_missing("PAYMENT_PROBE_BASE_URL"), reasons.http_status(503), reasons.redirect(302),
            reasons.webhook_status(500), reasons.replay_status(409), reasons.cert_expiring(3),
            reasons.tls_error("hostname_mismatch"), reasons.probe_error("KeyError"), reasons.provider_auth(403),
            reasons.provider_unavailable("tls_error:expired"), reasons.provider_rejected("resource missing")]
    assert made[-2:] == ["provider_unavailable:tls_error_expired", "provider_rejected:resource_missing"]
    assert all(reasons.known(r) for r in made)
    assert {r.partition(":")[0] for r in made} == reasons.FAMILIES
