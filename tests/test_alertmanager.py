"""Routing (SPEC 20), checked by the real tools: ``amtool check-config`` and ``amtool config routes
test`` for every alert of docker/prometheus/alerts.yml, and ``promtool check config`` for both
Prometheus configs, which name the rule file relative to themselves and send to Alertmanager."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from conftest import REPO, free_port, probe_env, query
from support.processes import cli, spawn, wait_for
from support.tools import rules_in_seconds, tool

DOCKER = REPO / "docker"
ALERTMANAGER = DOCKER / "alertmanager" / "alertmanager.yml"
RECEIVER = {"page": "billing-oncall-pager", "critical": "billing-oncall-pager", "ticket": "billing-oncall-chat"}


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


# ---- end to end: runner -> Prometheus -> Alertmanager -> a receiver ------------------------------

class Receiver:
    """A local webhook receiver standing in for PagerDuty and Slack: every notification, by path."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.notifications: list[tuple[str, float, dict[str, object]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                import time as _time

                outer.notifications.append((self.path, _time.monotonic(), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def alerts(self, path: str, name: str, status: str, after: float = 0.0) -> list[dict[str, object]]:
        return [alert for at_path, at, body in self.notifications if at_path == path and at >= after
                for alert in body["alerts"]  # type: ignore[attr-defined]
                if alert["labels"]["alertname"] == name and alert["status"] == status]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _drill_alertmanager_config(receiver: Receiver) -> dict[str, object]:
    """The shipped routing tree and inhibition, its two receivers pointed at the local one, and its
    waits shrunk to the drill's second-long runs: the routes are the file's own."""
    config = yaml.safe_load(ALERTMANAGER.read_text())
    config["receivers"] = [
        {"name": "billing-oncall-pager", "webhook_configs": [{"url": f"{receiver.url}/pager", "send_resolved": True}]},
        {"name": "billing-oncall-chat", "webhook_configs": [{"url": f"{receiver.url}/chat", "send_resolved": True}]},
    ]
    shipped_receivers = {route["receiver"] for route in config["route"]["routes"]} | {config["route"]["receiver"]}
    assert shipped_receivers == {"billing-oncall-pager", "billing-oncall-chat"}
    config["route"].update({"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"})
    for route in config["route"]["routes"]:
        route.update({"group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"})
    return config


def test_a_critical_fault_reaches_the_pager_through_alertmanager_and_resolves(
        sandbox: object, database_url: str, tmp_path: Path) -> None:
    """SPEC 20 end to end, as real processes: the runner, Prometheus with the shipped rules (minutes
    made seconds), Alertmanager with the shipped routes, a local receiver. A critical webhook fault
    arrives as PaymentProbeWebhookSecurityFailing with leg, severity, runbook_url and a summary naming
    the reason; clearing it resolves it there; with a maintenance window open nothing arrives."""
    alertmanager, prometheus = tool("prometheus-alertmanager"), tool("prometheus")
    receiver = Receiver()
    runner_port, prom_port, am_port = free_port(), free_port(), free_port()
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(_drill_alertmanager_config(receiver)))
    (tmp_path / "alerts.yml").write_text(rules_in_seconds())
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "500ms", "evaluation_interval": "500ms"},
        "rule_files": ["alerts.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "payment-probe", "static_configs": [{"targets": [f"127.0.0.1:{runner_port}"]}]}],
    }))
    env = probe_env(sandbox, database_url, tmp_path, PAYMENT_PROBE_INTERVAL_SECONDS="1",  # type: ignore[arg-type]
                    PAYMENT_PROBE_METRICS_PORT=str(runner_port))
    am = subprocess.Popen([alertmanager, f"--config.file={tmp_path / 'alertmanager.yml'}",
                           f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
                           "--cluster.listen-address="],  # no gossip port: a lone Alertmanager on loopback
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prom = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runner = spawn("run", env=env)

    def runs_seen() -> float:
        try:
            data = requests.get(f"http://127.0.0.1:{prom_port}/api/v1/query",
                                params={"query": "sum(instant_payment_probe_runs_total)"}, timeout=2).json()
            result = data["data"]["result"]
        except (requests.RequestException, ValueError, KeyError):
            return 0.0
        return float(result[0]["value"][1]) if result else 0.0

    name = "PaymentProbeWebhookSecurityFailing"
    try:
        wait_for(lambda: runs_seen() >= 3, 120, "Prometheus scraping healthy runs", step=0.5)
        assert receiver.alerts("/pager", name, "firing") == []
        sandbox.faults.replace(["webhook_accept_unsigned"])  # type: ignore[attr-defined]
        faulted = time.monotonic()
        (alert, *_) = wait_for(lambda: receiver.alerts("/pager", name, "firing"), 90, "the page at the receiver",
                               step=0.2)
        paged = next(at for path, at, body in receiver.notifications if path == "/pager")
        print(f"fault to the receiver's notification: {paged - faulted:.1f}s")
        labels, notes = alert["labels"], alert["annotations"]  # type: ignore[index]
        assert (labels["leg"], labels["severity"]) == ("webhook_security", "critical")
        assert notes["summary"].startswith("webhook_security: unsigned_accepted — ")
        assert notes["runbook_url"].endswith("/docs/runbooks/PaymentProbeWebhookSecurityFailing.md")
        assert notes["description"].endswith("Latest reason by location: local: unsigned_accepted.")
        assert receiver.alerts("/chat", name, "firing") == []  # a critical goes to the pager, not to chat
        sandbox.faults.replace([])  # type: ignore[attr-defined]
        wait_for(lambda: receiver.alerts("/pager", name, "resolved"), 90, "the resolution at the receiver", step=0.2)
        opened = cli("maintenance", "start", "--for", "10m", "--reason", "drill", env=env)
        assert opened.returncode == 0, opened.stderr
        wait_for(lambda: float(requests.get(f"http://127.0.0.1:{prom_port}/api/v1/query",
                                            params={"query": "max(instant_payment_probe_maintenance)"},
                                            timeout=2).json()["data"]["result"][0]["value"][1]) == 1.0,
                 60, "Prometheus seeing the window", step=0.5)
        window_open = time.monotonic()
        sandbox.faults.replace(["webhook_accept_unsigned"])  # type: ignore[attr-defined]

        def failed_in_the_window() -> int:
            return int(query(database_url, "SELECT count(*) FROM audit_log WHERE metadata->>'maintenance' = 'true' "
                                           "AND leg = 'webhook_security' AND result = 'fail'")[0][0])
        wait_for(lambda: failed_in_the_window() >= 5, 90, "critical outcomes recorded in the window", step=0.5)
        # Five runs recorded the critical in the window, each evaluated by the rules twice a second since:
        # Prometheus holds the alert inactive (the rules' maintenance clause), so nothing was sent.
        alerts = requests.get(f"http://127.0.0.1:{prom_port}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        assert [a for a in alerts if a["labels"]["alertname"] == name] == []
        assert receiver.alerts("/pager", name, "firing", after=window_open) == []
        assert [p for p, at, body in receiver.notifications if at >= window_open and p == "/pager"
                and any(a["status"] == "firing" for a in body["alerts"])] == []  # type: ignore[attr-defined]
    finally:
        for proc in (runner, prom, am):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        runner.communicate(timeout=60)
        prom.wait(timeout=30)
        am.wait(timeout=30)
        receiver.stop()
