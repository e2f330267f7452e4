"""Every PromQL expression an on-call is handed — the dashboard's panels (its variables filled in),
docs/METRICS.md's examples and the runbooks' queries — evaluated against a real Prometheus that
scraped a real runner (SPEC 20): each must return at least one series. The test lists any that
do not, so a renamed metric, a label the series do not carry (``up{location=…}``) or a window
that holds no run fails here instead of in an incident."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import requests
import yaml

from conftest import REPO, free_port, probe_env
from support.processes import spawn, wait_for
from support.tools import tool

PLACEHOLDERS = {"<location>": "local", "<leg>": "billing_state", "<the probers' scrape job>": "payment-probe"}
DASHBOARD_VARIABLES = {"$environment": ".*", "$location": ".*", "${datasource}": ""}


def _fill(expr: str) -> str:
    for placeholder, value in {**PLACEHOLDERS, **DASHBOARD_VARIABLES}.items():
        expr = expr.replace(placeholder, value)
    return expr


def expressions() -> list[tuple[str, str]]:
    """(where, expression) for every query the kit gives an operator."""
    found: list[tuple[str, str]] = []
    dashboard = json.loads((REPO / "docker" / "grafana" / "payment-probe.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            found.append((f"dashboard: {panel['title']}", _fill(target["expr"])))
    for line in (REPO / "docs" / "METRICS.md").read_text().splitlines():
        if line.startswith("| `instant_payment_probe_") or line.startswith("| `process_"):
            example = re.findall(r"`([^`]+)`", line.rsplit("|", 2)[-2])
            assert example, line
            found.append((f"METRICS.md: {line.split('`')[1]}", _fill(example[0])))
    for runbook in sorted((REPO / "docs" / "runbooks").glob("*.md")):
        for code in re.findall(r"`([^`]+)`", runbook.read_text().replace("\n   ", " ")):
            if re.search(r"\b(instant_payment_probe_\w+|up)\s*[{(]", code) and "SELECT" not in code:
                found.append((f"{runbook.name}", _fill(code)))
    return found


def test_every_expression_returns_data_against_a_real_prometheus(sandbox: object, database_url: str,
                                                                  tmp_path: Path) -> None:
    queries = expressions()
    assert len(queries) >= 35, queries  # the dashboard's, the catalog's and the runbooks'
    prometheus = tool("prometheus")
    runner_port, prom_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "500ms", "evaluation_interval": "500ms"},
        "scrape_configs": [{"job_name": "payment-probe", "static_configs": [{"targets": [f"127.0.0.1:{runner_port}"]}]}],
    }))
    runner = spawn("run", env=probe_env(sandbox, database_url, tmp_path, PAYMENT_PROBE_INTERVAL_SECONDS="1",  # type: ignore[arg-type]
                                        PAYMENT_PROBE_METRICS_PORT=str(runner_port)))
    prom = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{prom_port}/api/v1/query"

    def result(expr: str) -> list[object] | None:
        try:
            answer = requests.get(api, params={"query": expr}, timeout=5).json()
        except (requests.RequestException, ValueError):
            return None
        if answer.get("status") != "success":
            return [f"error: {answer.get('error')}"]  # type: ignore[list-item]
        return list(answer["data"]["result"])

    try:
        # Several scrapes of several runs (rate() and increase() need two samples), the certificate
        # leg's gauge among them.
        wait_for(lambda: (result("count_over_time(instant_payment_probe_runs_total[1h]) >= 6") or [])
                 and (result("changes(instant_payment_probe_runs_total[1h]) >= 3") or [])
                 and result("instant_payment_probe_tls_cert_expiry_timestamp_seconds > 0"), 120,
                 "Prometheus holding the runner's runs", step=0.5)
        empty = []
        for where, expr in queries:
            answer = result(expr)
            if not answer or (isinstance(answer[0], str) and answer[0].startswith("error")):
                empty.append(f"{where}: {expr} -> {answer}")
        print(f"{len(queries)} expressions evaluated")
    finally:
        prom.send_signal(signal.SIGTERM)
        runner.send_signal(signal.SIGTERM)
        prom.wait(timeout=30)
        runner.communicate(timeout=60)
    assert empty == [], "\n".join(empty)
