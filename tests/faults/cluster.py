"""A private PostgreSQL server for fault tests: its own data directory, and no TCP port (it listens on
a Unix socket in its own directory), so a test can stop and restart it without touching the
machine's server or other test runs, and nothing can take its address while it is down."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def available() -> str | None:
    """None when a private server can be run here, else the reason."""
    if not _bin("initdb") or not _bin("pg_ctl"):
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root without runuser"
    return None


PORT = 5432  # only names the socket file (.s.PGSQL.5432) in the server's own directory


class PrivateCluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="elimu-pg-"))
        self.data = self.root / "data"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(_as_postgres([_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                                     "--no-sync", "-E", "UTF8"]), check=True, capture_output=True)
        with open(self.data / "postgresql.conf", "a") as conf:
            # A TCP port found free could be taken by another test before the server binds it, or while a
            # restart has it down; a socket file in the server's own directory cannot.
            conf.write(f"\nport = {PORT}\nlisten_addresses = ''\nunix_socket_directories = '{self.root}'\n"
                       "max_connections = 100\n")  # durable, as in production

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@/postgres?host={self.root}&port={PORT}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(_as_postgres([_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), *args]),
                       check=True, capture_output=True)

    def start(self) -> None:
        self._ctl("start", "-w", "-t", "30")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode, "-w", "-t", "30")

    def restart(self, down_for: float = 0.0) -> None:
        """Stop (immediate: connections die as in a crash), stay down ``down_for`` seconds, start."""
        self.stop("immediate")
        time.sleep(down_for)
        self.start()

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
