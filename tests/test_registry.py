"""The leg vocabulary is closed: every registered leg has its test, every leg test is registered."""

from __future__ import annotations

import ast
from pathlib import Path

import synthetics
from synthetics.registry import LEGS, MARKERS, leg_for_test

LEGS_DIR = Path(synthetics.__file__).parent


def _leg_tests() -> dict[str, set[str]]:
    """test_* functions in synthetics/ and the pytest markers decorating them."""
    found: dict[str, set[str]] = {}
    for path in LEGS_DIR.glob("test_*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                marks = {
                    d.attr for d in node.decorator_list
                    if isinstance(d, ast.Attribute) and isinstance(d.value, ast.Attribute)
                    and d.value.attr == "mark"
                }
                assert node.name not in found, f"{node.name} defined twice"
                found[node.name] = marks
    return found


def test_every_test_is_a_registered_leg_and_every_leg_has_a_test() -> None:
    tests = _leg_tests()
    assert set(tests) == {f"test_{name}" for name in LEGS}


def test_each_leg_carries_exactly_its_registered_marker() -> None:
    tests = _leg_tests()
    for name, leg in LEGS.items():
        assert tests[f"test_{name}"] & set(MARKERS) == {leg.marker}, name


def test_only_the_money_path_legs_are_marked_upgrade() -> None:
    assert [n for n, leg in LEGS.items() if leg.marker == "upgrade"] == [
        "upgrade_webhook_e2e", "webhook_replay", "provider_roundtrip"]
    assert LEGS["webhook_replay"].slow_seconds == 10.0


def test_leg_for_test_maps_names_and_rejects_strangers() -> None:
    assert leg_for_test("test_billing_state") is LEGS["billing_state"]
    assert leg_for_test("test_something_else") is None
    assert leg_for_test("billing_state") is None
