"""Routing (SPEC 20), checked by the real tools: ``amtool check-config`` and ``amtool config routes
test`` for every alert of docker/prometheus/alerts.yml, and ``promtool check config`` for both
Prometheus configs, which name the rule file relative to themselves and send to Alertmanager."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO

DOCKER = REPO / "docker"
ALERTMANAGER = DOCKER / "alertmanager" / "alertmanager.yml"
RECEIVER = {"page": "billing-oncall-pager", "critical": "billing-oncall-pager", "ticket": "billing-oncall-chat"}


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (Debian's prometheus-alertmanager / prometheus; .ci/run installs them)")
    return found


def _alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load((DOCKER / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_amtool_accepts_the_configuration() -> None:
    proc = subprocess.run([tool("amtool"), "check-config", str(ALERTMANAGER)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout and "1 inhibit rules" in proc.stdout and "2 receivers" in proc.stdout


@pytest.mark.parametrize("rule", _alerts(), ids=lambda r: str(r["alert"]))
def test_each_alert_reaches_its_receiver(rule: dict[str, object]) -> None:
    labels = dict(rule["labels"])  # type: ignore[call-overload]
    expected = RECEIVER[labels["severity"]]
    argv = [tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER}", f"--verify.receivers={expected}",
            f"alertname={rule['alert']}", *(f"{k}={v}" for k, v in labels.items()), "leg=checkout_reachable"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == expected


def test_every_alert_has_a_severity_the_routes_know_and_is_grouped_by_leg() -> None:
    assert {str(dict(r["labels"])["severity"]) for r in _alerts()} <= set(RECEIVER)  # type: ignore[call-overload]
    config = yaml.safe_load(ALERTMANAGER.read_text())
    assert config["route"]["group_by"] == ["alertname", "leg"]
    (inhibit,) = config["inhibit_rules"]
    assert inhibit == {"source_matchers": ['alertname="PaymentProbeLegFailing"'],
                       "target_matchers": ['alertname="PaymentProbeLegFailingInOneLocation"'], "equal": ["leg"]}
    pager, chat = config["receivers"]
    assert "routing_key_file" in pager["pagerduty_configs"][0] and "routing_key" not in pager["pagerduty_configs"][0]
    assert "api_url_file" in chat["slack_configs"][0] and "api_url" not in chat["slack_configs"][0]


@pytest.mark.parametrize("config", ["prometheus.yml", "central.yml"])
def test_both_prometheus_configs_resolve_their_rules_and_send_to_alertmanager(config: str) -> None:
    path = DOCKER / "prometheus" / config
    proc = subprocess.run([tool("promtool"), "check", "config", str(path)], capture_output=True, text=True, cwd=Path("/"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 rule files found" in proc.stdout
    loaded = yaml.safe_load(path.read_text())
    assert loaded["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
