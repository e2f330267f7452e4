"""Running the probe's commands as a user does: a child process with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def base_env() -> dict[str, str]:
    """This process's environment without any probe setting: each test gives its own."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PAYMENT_PROBE_", "RAZORPAY_", "NEW_RELIC_"))}


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], env={**base_env(), **env},
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def pytest_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          env={**base_env(), **env}, capture_output=True, text=True, timeout=180, cwd=REPO)


class Spawned(subprocess.Popen[str]):
    """A child whose stdout and stderr are drained as they come: a runner logging for minutes
    must never block on a full pipe (that would look exactly like the hang a drill tests for)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        super().__init__(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        self.out: list[str] = []
        self.err: list[str] = []
        self._drains = [threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
                        for stream, sink in ((self.stdout, self.out), (self.stderr, self.err))]
        for drain in self._drains:
            drain.start()

    @staticmethod
    def _drain(stream: Any, sink: list[str]) -> None:
        for line in iter(stream.readline, ""):
            sink.append(line)

    def communicate(self, input: Any = None, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        for drain in self._drains:
            drain.join(timeout)
        return "".join(self.out), "".join(self.err)

    def stdout_so_far(self) -> str:
        return "".join(self.out)


def spawn(*args: str, env: dict[str, str]) -> Spawned:
    return Spawned([sys.executable, "-m", "runner.cli", *args], env={**base_env(), **env})


def wait_for(predicate, timeout: float, what: str, step: float = 0.1):  # type: ignore[no-untyped-def]
    """Wait on the event itself (a line, a row, a metric), with a generous ceiling; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
