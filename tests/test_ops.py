"""The operations kit, checked by the real tools that consume it (promtool, Prometheus, Postgres)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import yaml
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

from runner.signals.metrics import LocationView, ProbeMetrics
from sandbox.server import SandboxServer
from synthetics.config import DEFAULT_LOCATION, SECRET_VARIABLES, VARIABLES
from synthetics.secret import Secret

from conftest import LEGS, REPO, free_port, probe_env, query
from support.processes import cli, spawn, wait_for
from support.tools import RULES, rules_in_seconds, tool

DOCKER = REPO / "docker"


def exposition() -> str:
    """The runner's real exposition: the same registry wiring as runner.app (scraped through its
    LocationView), primed."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    metrics = ProbeMetrics(registry)
    metrics.prime()
    metrics.latency.labels(leg="billing_state").observe(0.1)
    return generate_latest(LocationView(registry, DEFAULT_LOCATION)).decode()  # type: ignore[arg-type]


def families(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))


def sample_names(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


# ---- alert rules ---------------------------------------------------------------------------------

def test_promtool_checks_the_rules() -> None:
    proc = subprocess.run([tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 17 rules found" in proc.stdout


def test_promtool_unit_tests_pass() -> None:
    proc = subprocess.run([tool("promtool"), "test", "rules", "alerts_test.yml"],
                          capture_output=True, text=True, cwd=RULES.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def _alerts() -> list[dict[str, Any]]:
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    return [rule for rule in rules if "alert" in rule]


def test_every_alert_has_summary_description_and_an_existing_runbook() -> None:
    for alert in _alerts():
        notes = alert["annotations"]
        assert notes["summary"] and notes["description"], alert["alert"]
        assert "leg" in notes["description"], alert["alert"]
        runbook = notes["runbook_url"]
        assert runbook.endswith(f"docs/runbooks/{alert['alert']}.md")
        assert (REPO / "docs" / "runbooks" / f"{alert['alert']}.md").is_file()
        assert alert["labels"]["severity"] in {"page", "critical", "ticket"}


def test_degraded_never_pages_and_webhook_is_critical() -> None:
    by_name = {a["alert"]: a for a in _alerts()}
    for alert in by_name.values():
        if 'result="degraded"' in alert["expr"]:
            assert alert["labels"]["severity"] == "ticket"
    assert by_name["PaymentProbeWebhookSecurityFailing"]["labels"]["severity"] == "critical"
    assert "for" not in by_name["PaymentProbeWebhookSecurityFailing"]  # pages at once
    for name in ("PaymentProbeLegFailing", "PaymentProbeWebhookSecurityFailing", "PaymentProbeNoRecentRun"):
        assert "unless on () max(instant_payment_probe_maintenance) == 1" in by_name[name]["expr"], name
    assert "maintenance" not in by_name["PaymentProbeLegDegraded"]["expr"]  # tickets may still open


def test_rules_use_only_exported_metrics() -> None:
    exported = set(families(exposition()))
    for alert in _alerts():
        for name in re.findall(r"\b(instant_payment_probe_[a-z_]+)", alert["expr"]):
            assert name in exported or name.removesuffix("_total") in exported, name


# ---- end to end with a real Prometheus ----------------------------------------------------------

def test_critical_alert_holds_through_a_leader_kill_and_maintenance_silences_it(
    sandbox: SandboxServer, database_url: str, tmp_path: Path
) -> None:
    """Two replicas, webhook_accept_unsigned on: the critical alert fires; SIGKILL the leader and
    it never resolves while the other replica takes over; a maintenance window resolves it while
    the outcomes keep arriving; the fault cleared and the window ended, it stays resolved."""
    prometheus = tool("prometheus")
    ports, prom_port = [free_port(), free_port()], free_port()
    # The shipped rules as they are: their windows follow the exported intervals (runs every second,
    # scrapes every half).
    (tmp_path / "alerts.yml").write_text(RULES.read_text())
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "500ms", "evaluation_interval": "500ms"},
        "rule_files": [str(tmp_path / "alerts.yml")],
        "scrape_configs": [{"job_name": "payment-probe",
                            "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}]}],
    }))
    runners = [spawn("run", env=probe_env(sandbox, database_url, tmp_path, PAYMENT_PROBE_INTERVAL_SECONDS="1",
                                          PAYMENT_PROBE_METRICS_PORT=str(port), RAZORPAY_TEST_WEBHOOK_SECRET=""))
               for port in ports]
    prom = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{prom_port}/api/v1"

    def state() -> str | None:
        try:
            alerts = requests.get(f"{api}/alerts", timeout=2).json()["data"]["alerts"]
        except (requests.RequestException, ValueError, KeyError):
            return None
        found = [a for a in alerts if a["labels"]["alertname"] == "PaymentProbeWebhookSecurityFailing"]
        return found[0]["state"] if found else "inactive"

    def runs_seen() -> float:
        try:
            data = requests.get(f"{api}/query", params={"query": "sum(instant_payment_probe_runs_total)"},
                                timeout=2).json()["data"]["result"]
        except (requests.RequestException, ValueError, KeyError):
            return 0.0
        return float(data[0]["value"][1]) if data else 0.0

    def runs_of(port: int) -> float:
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except requests.RequestException:
            return -1.0
        return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("instant_payment_probe_runs_total{")), 0.0)

    env = probe_env(sandbox, database_url, tmp_path)
    try:
        wait_for(lambda: runs_seen() >= 2, 90, "Prometheus scraping runs", step=0.5)
        wait_for(lambda: state() == "inactive", 30, "a healthy start", step=0.5)
        sandbox.faults.replace(["webhook_accept_unsigned"])
        wait_for(lambda: state() == "firing", 60, "the critical alert firing", step=0.5)
        leader = query(database_url, "SELECT replica FROM payment_probe_slots ORDER BY slot_start DESC LIMIT 1")[0][0]
        victim = next(i for i, r in enumerate(runners) if leader.endswith(f"-{r.pid}"))
        survivor_port = ports[1 - victim]
        before = runs_of(survivor_port)
        runners[victim].kill()
        runners[victim].communicate(timeout=10)
        states: list[str | None] = []

        def survivor_ran_twice() -> bool:
            states.append(state())
            return runs_of(survivor_port) >= before + 2
        # (None is a Prometheus API call that failed on a loaded machine, not an alert state.)
        try:
            wait_for(survivor_ran_twice, 120, "the other replica taking over", step=0.5)
        except AssertionError:
            survivor = runners[1 - victim]
            survivor.terminate()
            _, err = survivor.communicate(timeout=60)
            raise AssertionError(f"no takeover; runs {before} -> {runs_of(survivor_port)}; survivor's log: "
                                 f"{err[-3000:]}") from None
        for _ in range(10):  # and a few seconds more, past the 6 s window of the dead leader's last run
            states.append(state())
            time.sleep(0.5)
        seen = [s for s in states if s is not None]
        assert len(seen) >= 5 and set(seen) == {"firing"}, states  # never resolved nor pending through the takeover
        opened = cli("maintenance", "start", "--for", "10m", "--reason", "drill", env=env)
        assert opened.returncode == 0, opened.stderr
        wait_for(lambda: state() == "inactive", 60, "the alert silenced by the window", step=0.5)

        def recorded_in_the_window() -> int:  # outcomes keep arriving, each carrying the window
            return int(query(database_url, "SELECT count(*) FROM audit_log WHERE metadata->>'maintenance' = 'true' "
                                           "AND leg = 'webhook_security' AND result = 'fail'")[0][0])
        wait_for(lambda: recorded_in_the_window() >= 2, 60, "failing outcomes recorded during the window", step=0.5)
    finally:
        prom.send_signal(signal.SIGTERM)
        for runner in runners:
            if runner.poll() is None:
                runner.send_signal(signal.SIGTERM)
        prom.wait(timeout=30)
        for runner in runners:
            runner.communicate(timeout=60)


# ---- dashboard and catalog ------------------------------------------------------------------------

def test_dashboard_is_grafana_json_on_real_metric_names() -> None:
    dashboard = json.loads((DOCKER / "grafana" / "payment-probe.json").read_text())
    assert {"uid", "title", "panels", "schemaVersion", "time"} <= set(dashboard)
    exported_samples = sample_names(exposition())
    titles = []
    for panel in dashboard["panels"]:
        assert {"id", "type", "title", "gridPos", "targets"} <= set(panel)
        titles.append(panel["title"].lower())
        for target in panel["targets"]:
            names = re.findall(r"\b((?:instant_payment_probe|process)_[a-z_]+)", target["expr"])
            assert names, target["expr"]
            for name in names:
                assert name in exported_samples, name
    wanted = ["result per leg", "p50", "p95", "age of the last run", "enabled", "sink errors",
              "certificate expires", "by phase"]
    for word in wanted:
        assert any(word in t for t in titles), word


def test_metrics_catalog_matches_the_exposition_both_ways() -> None:
    text = (REPO / "docs" / "METRICS.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \| (\w+) \|", text, re.MULTILINE)
    catalog = dict(rows)
    exported = families(exposition())
    # prometheus-client names counter families without _total in # TYPE
    exported = {(f"{name}_total" if kind == "counter" and not name.endswith("_total") else name): kind
                for name, kind in exported.items()}
    assert catalog == exported


# ---- container and Kubernetes -------------------------------------------------------------------

def test_dockerfile_copies_files_that_exist_and_runs_unprivileged() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:  # a stage's output, not the repository's
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
    assert re.search(r"^USER 10001$", text, re.MULTILINE)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert re.search(r"^FROM python:3\.11-slim", text, re.MULTILINE)
    assert "--require-hashes" in text and "requirements.lock" in text
    assert "/sandbox" in text  # the sandbox package is removed from the runtime image
    # The lock's pins against pyproject: tests/test_installed.py::test_the_lock_satisfies_pyproject_and_is_hashed.


def test_the_runtime_never_imports_what_only_the_tests_install() -> None:
    """razorpay, stripe, standardwebhooks and yaml serve the tests only; requests is imported by the
    trace exporter alone (through a wire-backed adapter): the legs and sinks speak HTTP through
    synthetics/wire.py."""
    import ast

    dev_only = {"razorpay", "yaml", "stripe", "standardwebhooks"}
    for package in ("runner", "synthetics", "sandbox"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                for name in names:
                    assert name.split(".")[0] not in dev_only, f"{path.relative_to(REPO)} imports {name}"
                    if name.split(".")[0] == "requests":
                        assert path == REPO / "runner" / "signals" / "traces.py", f"{path} imports requests"


def _kustomize(path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of a directory: the objects exactly as ``kubectl apply -k`` would send them."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed (.ci/run installs it)"
    proc = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _manifests() -> list[dict[str, Any]]:
    """The rendered base, and the Secret templates that live outside it."""
    return _kustomize(DOCKER / "k8s") + [d for d in yaml.safe_load_all((DOCKER / "secret.example.yaml").read_text())
                                         if d]


def test_manifests_have_what_kubernetes_requires() -> None:
    docs = _manifests()
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ConfigMap", "Secret", "Namespace", "PodMonitor", "Job"} <= kinds
    for doc in docs:
        assert doc["apiVersion"] and doc["metadata"]["name"]
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "payment-probe"
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"] and container["args"] == ["run"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
    assert spec["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    grace = spec["template"]["spec"]["terminationGracePeriodSeconds"]
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert grace > float(config["PAYMENT_PROBE_LEG_TIMEOUT_SECONDS"])
    job = next(d for d in docs if d["kind"] == "Job")
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["migrate"] and migrate["image"] == container["image"]
    assert {"secretRef": {"name": "payment-probe-owner"}} in migrate["envFrom"]  # the table owner's URL


def test_the_base_holds_no_secret_and_renders_for_every_kubernetes_version_known() -> None:
    """Applying docker/k8s never overwrites a real Secret; the namespace comes first; the rendered base
    and the example overlay pass kubernetes-validate --strict for the oldest and newest version it knows."""
    base = _kustomize(DOCKER / "k8s")
    assert [d for d in base if d["kind"] == "Secret"] == []
    assert base[0]["kind"] == "Namespace"
    config = next(d for d in base if d["kind"] == "ConfigMap")["data"]
    assert "PAYMENT_PROBE_WEBHOOK_PATH" not in config  # the provider implies it
    overlay = _kustomize(DOCKER / "k8s-overlays" / "eu-west-1")
    assert next(d for d in overlay if d["kind"] == "ConfigMap")["data"]["PAYMENT_PROBE_LOCATION"] == "eu-west-1"
    from kubernetes_validate.utils import all_versions

    versions = sorted({v.split("-")[0] for v in all_versions()}, key=lambda v: tuple(int(x) for x in v.split(".")))
    for docs in (base, overlay):
        rendered = Path(tempfile.mkdtemp()) / "rendered.yaml"
        rendered.write_text(yaml.safe_dump_all(docs))
        for version in (versions[0], versions[-1]):
            proc = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version,
                                   str(rendered)], capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            passed = proc.stdout.count("passed for resource")
            assert passed == len(docs) - 1, proc.stdout  # all but the PodMonitor (a CRD it has no schema for)


def test_every_variable_is_referenced_and_secrets_stay_in_the_secret() -> None:
    docs = _manifests()
    config = set(next(d for d in docs if d["kind"] == "ConfigMap")["data"])
    secret = set(next(d for d in docs if d["kind"] == "Secret")["stringData"])
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    inline = {e["name"] for e in container.get("env", [])}
    referenced = config | secret | inline
    assert referenced <= set(VARIABLES), referenced - set(VARIABLES)
    implied = {"PAYMENT_PROBE_WEBHOOK_PATH"}  # the provider's default; a comment in the ConfigMap says so
    assert set(VARIABLES) - implied <= referenced, set(VARIABLES) - implied - referenced
    assert "PAYMENT_PROBE_WEBHOOK_PATH" in (DOCKER / "k8s" / "configmap.yaml").read_text()
    assert secret >= SECRET_VARIABLES
    assert not (SECRET_VARIABLES & config)
    refs = {ref for source in container["envFrom"] for ref in source}
    assert refs == {"configMapRef", "secretRef"}


def test_readme_documents_every_variable_and_command() -> None:
    """The README's variable table is the settings table's, row for row (``python -m synthetics.settings``)."""
    from synthetics.settings import check_fields, markdown_table

    readme = (REPO / "README.md").read_text()
    table = "\n".join(markdown_table())
    assert "\n" + table + "\n" in readme, "README's variable table: paste `python -m synthetics.settings`"
    assert len(markdown_table()) == len(VARIABLES) + 2
    assert check_fields() == []
    for command in ("make demo", "make test", "make bench", "payment-probe run --once --json",
                    "payment-probe sandbox", "payment-probe migrate", "payment-probe sweep"):
        assert command in readme, command


def test_ci_gate_examples_install_the_package_and_run_the_gate() -> None:
    workflow = yaml.safe_load((DOCKER / "ci" / "github-actions.yml").read_text())
    steps = workflow["jobs"]["probe-staging"]["steps"]
    assert not any("actions/checkout" in s.get("uses", "") for s in steps)  # not the application's checkout
    install = next(s["run"] for s in steps if "run" in s and "pip install" in s["run"])
    assert "-e ." not in install and "payment-probe" in install
    run = next(s["run"] for s in steps if "run" in s and "payment-probe gate" in s["run"])
    assert "--base-url" in run and "--junitxml=" in run and "--fail-on fail" not in run
    assert "--probe-pushgateway" in run
    gitlab = yaml.safe_load((DOCKER / "ci" / "gitlab-ci.yml").read_text())["payment-probe-gate"]
    assert any("pip install" in line and "-e ." not in line for line in gitlab["before_script"])
    script = " ".join(gitlab["script"])
    assert "payment-probe gate" in script and "--base-url" in script and "--fail-on fail" not in script
    assert gitlab["artifacts"]["reports"]["junit"] == "probe-junit.xml"


def test_compose_wires_every_service_to_files_that_exist() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert set(compose["services"]) == {"postgres", "sandbox", "runner", "prometheus", "alertmanager"}
    for service in ("prometheus", "alertmanager"):
        for volume in compose["services"][service]["volumes"]:
            assert (DOCKER / volume.split(":")[0]).exists(), volume
    assert compose["services"]["sandbox"]["build"]["target"] == "demo"  # the runner's image has no sandbox
    runner_env = compose["services"]["runner"]["environment"]
    assert set(runner_env) <= set(VARIABLES)


# ---- least privilege ----------------------------------------------------------------------------

@pytest.fixture
def probe_role(database_url: str, pg_server: str) -> Iterator[str]:
    """The prober's role from docker/sql/probe_role.sql, applied to a fresh database."""
    proc = cli("migrate", env={"PAYMENT_PROBE_DATABASE_URL": database_url})
    assert proc.returncode == 0, proc.stderr
    query(database_url, (DOCKER / "sql" / "probe_role.sql").read_text())
    password = uuid.uuid4().hex
    query(database_url, f"ALTER ROLE payment_probe PASSWORD '{password}'")
    yield database_url.replace("postgresql://postgres@", f"postgresql://payment_probe:{password}@")
    query(database_url, "DROP OWNED BY payment_probe")


def test_probe_role_cannot_touch_a_real_team(probe_role: str, database_url: str) -> None:
    real = str(uuid.uuid4())
    lookalike = str(uuid.uuid4())
    query(database_url, "INSERT INTO teams (id, name) VALUES (%s, 'acme')", (real,))
    query(database_url, "INSERT INTO teams (id, name, is_test_cohort) VALUES "
                        "(%s, 'payment-probe-cohort-but-not-a-cohort', false)", (lookalike,))
    with psycopg.connect(probe_role, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE teams SET plan_tier = 'pro' WHERE id = %s", (real,))
        for crafted in (
            "DELETE FROM teams",
            "DELETE FROM teams WHERE true OR is_test_cohort",
            "DELETE FROM teams WHERE id = %s",
            "DELETE FROM teams WHERE id = %s AND (is_test_cohort OR true)",
        ):
            params = (real,) if "%s" in crafted else ()
            assert conn.execute(crafted, params).rowcount == 0, crafted
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE teams")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # RLS: only cohort rows may be inserted
            conn.execute("INSERT INTO teams (id, name, plan_tier) VALUES (gen_random_uuid(), 'x', 'pro')")
        # Customers' teams are invisible to it: it only ever reads its own cohort rows.
        assert conn.execute("SELECT name FROM teams WHERE NOT is_test_cohort").fetchall() == []
        assert conn.execute("SELECT count(*) FROM teams").fetchone() == (0,)
    assert query(database_url, "SELECT count(*) FROM teams") == [(2,)]


def test_the_runner_works_under_the_probe_role(probe_role: str, sandbox: SandboxServer, database_url: str,
                                               tmp_path: Path) -> None:
    env = probe_env(sandbox, probe_role, tmp_path)
    proc = cli("run", "--once", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert {o["result"] for o in json.loads(proc.stdout)} == {"pass"}
    assert query(database_url, "SELECT count(*) FROM audit_log") == [(len(LEGS),)]
    assert query(database_url, "SELECT count(*) FROM teams WHERE is_test_cohort") == [(0,)]
    # start-up checks and leadership also work without CREATE
    assert cli("migrate", env={"PAYMENT_PROBE_DATABASE_URL": probe_role}).returncode == 0
    from runner.leadership import Leadership

    leader = Leadership(Secret(probe_role), "role-test")
    try:
        slot = float(int(time.time()))
        assert leader.is_leader() and leader.claim(slot) and not leader.claim(slot)
    finally:
        leader.close()
    # the sweep, and the status page's reads (audit rows, the roll-up, maintenance), under the role too
    swept = cli("sweep", env={"PAYMENT_PROBE_DATABASE_URL": probe_role})
    assert (swept.returncode, swept.stdout.strip()) == (0, "0")
    from runner.status import StatusSource

    snapshot = StatusSource(Secret(probe_role), "audit_log", dict.fromkeys(LEGS, 300.0)).snapshot()
    assert snapshot["history_available"] is True
    assert {leg["result"] for leg in snapshot["legs"]} == {"pass"}
    assert all(leg["uptime"]["24h"] == 100.0 for leg in snapshot["legs"])


def test_the_central_prometheus_config_for_several_locations_is_valid() -> None:
    """docker/prometheus/central.yml: federation from each location's Prometheus, the rules beside it."""
    proc = subprocess.run([tool("promtool"), "check", "config", str(DOCKER / "prometheus" / "central.yml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 17 rules found" in proc.stdout


def test_three_locations_page_only_when_two_agree_and_a_silent_location_is_a_ticket(
    sandbox: SandboxServer, database_url: str, tmp_path: Path
) -> None:
    """Three runners, three locations, one Postgres; locations eu and us probe a billing API that
    fails, ap a healthy one, through a real Prometheus with the project's rules. eu alone failing is
    a ticket naming it, never a page; us agreeing pages; ap's runner killed is LocationSilent."""
    from sandbox.server import SandboxSettings, start

    from conftest import PLAN_ID, WEBHOOK_SECRET

    prometheus = tool("prometheus")
    faulty = start(SandboxSettings(database_url=database_url, webhook_secret=WEBHOOK_SECRET, plan_id_pro=PLAN_ID,
                                   faults=["billing_500"]))
    ports = {loc: free_port() for loc in ("eu", "us", "ap")}
    prom_port = free_port()
    (tmp_path / "alerts.yml").write_text(rules_in_seconds())
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "500ms", "evaluation_interval": "500ms"},
        "rule_files": [str(tmp_path / "alerts.yml")],
        "scrape_configs": [{"job_name": "payment-probe",
                            "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports.values()]}]}],
    }))

    def runner(location: str) -> Any:
        target = sandbox if location == "ap" else faulty
        return spawn("run", env=probe_env(target, database_url, tmp_path / location, PAYMENT_PROBE_LOCATION=location,
                                          PAYMENT_PROBE_INTERVAL_SECONDS="1", PAYMENT_PROBE_METRICS_PORT=str(ports[location]),
                                          PAYMENT_PROBE_CONFIRM_RETRIES="2", PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS="2"))

    api = f"http://127.0.0.1:{prom_port}/api/v1"

    def firing(name: str) -> list[dict[str, str]] | None:
        try:
            alerts = requests.get(f"{api}/alerts", timeout=2).json()["data"]["alerts"]
        except (requests.RequestException, ValueError, KeyError):
            return None
        return [a["labels"] for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]

    runners = {"eu": runner("eu"), "ap": runner("ap")}
    prom = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ticket = wait_for(lambda: firing("PaymentProbeLegFailingInOneLocation"), 120, "eu's ticket", step=0.5)
        assert {(t["leg"], t["location"]) for t in ticket} == {("billing_state", "eu")}
        pages = []
        for _ in range(10):  # eu alone, for several of its runs: never a page
            pages.append(firing("PaymentProbeLegFailing"))
            time.sleep(0.5)
        assert not [p for p in pages if p], pages
        runners["us"] = runner("us")
        page = wait_for(lambda: firing("PaymentProbeLegFailing"), 120, "the page once us agrees", step=0.5)
        assert [p["leg"] for p in page] == ["billing_state"]
        wait_for(lambda: firing("PaymentProbeLegFailingInOneLocation") == [], 30, "the ticket giving way", step=0.5)
        runners["ap"].kill()
        runners["ap"].communicate(timeout=10)
        quiet = wait_for(lambda: firing("PaymentProbeLocationSilent"), 120, "ap silent", step=0.5)
        assert [q["location"] for q in quiet] == ["ap"]
        assert firing("PaymentProbeNoRecentRun") == []
    finally:
        prom.send_signal(signal.SIGTERM)
        for proc in runners.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        prom.wait(timeout=30)
        for proc in runners.values():
            proc.communicate(timeout=60)
        faulty.stop()
