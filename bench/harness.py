"""The benchmark's environment: its own PostgreSQL database and Redis db, and the processes under test.

Everything binds to 127.0.0.1 and is stopped when the benchmark ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("ELIMU_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_BASE = os.environ.get("ELIMU_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
SECRET = "bench-secret-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RUN_ID = os.getpid()  # database names carry it: two benchmark runs on one server never share data


def run_database(name: str) -> str:
    """This run's own name for database ``name``."""
    return f"{name}_{RUN_ID}"


def fresh_database(name: str) -> str:
    """Drop and create this run's database ``name``; return its URL."""
    name = run_database(name)
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    name = run_database(name)
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def reserve_redis_db() -> int:
    """A Redis db number no test run holds (same lock keys as tests/conftest.py)."""
    admin = redis.Redis.from_url(REDIS_BASE, db=0)
    for number in range(15, 0, -1):
        if admin.set(f"elimu:test-db-lock:{number}", f"bench-{os.getpid()}", nx=True, ex=3 * 3600):
            return number
    raise RuntimeError("all Redis databases 1-15 are reserved by test runs")


def release_redis_db(number: int) -> None:
    redis.Redis.from_url(REDIS_BASE, db=0).delete(f"elimu:test-db-lock:{number}")


@dataclass
class Stack:
    """The service under test: gunicorn web, RQ workers and the fake AT, on one database and Redis db."""

    database_url: str
    redis_db: int
    web_workers: int = 3
    web_threads: int = 4
    sms_workers: int = 2
    urgent_workers: int = 1  # `elimu worker --no-bulk`: OTPs, replies and inbound texts only
    env_extra: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)
    scratch: list[str] = field(default_factory=list)  # folders to remove at stop
    roles: dict[int, str] = field(default_factory=dict)  # pid -> what it runs (web, worker0, fake_at...)
    web_port: int = 0
    at_port: int = 0

    @property
    def redis_url(self) -> str:
        return f"{REDIS_BASE.rstrip('/')}/{self.redis_db}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            ELIMU_ENV="production",
            ELIMU_SECRET_KEY=SECRET,
            SMS_BACKEND="africastalking",
            AT_USERNAME="benchuser",
            AT_API_KEY="bench-key",
            AT_API_BASE_URL=f"http://127.0.0.1:{self.at_port}/version1",
            ELIMU_LOG_FORMAT="json",
            ELIMU_SMS_RATE="100000",
            PYTHONUNBUFFERED="1",
        )
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(self.env_extra)
        return env

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def _spawn(self, args: list[str], log_name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log_dir = ROOT / "bench" / "results" / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = open(log_dir / f"{log_name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(args, cwd=ROOT, env=env or self.env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        self.roles[proc.pid] = log_name
        return proc

    def cpu_parts(self) -> dict[str, list[int]]:
        """The running processes by part, for ``bench.cpu.snapshot``: web, workers, fake AT."""
        parts: dict[str, list[int]] = {"web": [], "workers": [], "fake AT": []}
        for pid, role in self.roles.items():
            parts["workers" if "worker" in role else "fake AT" if role == "fake_at" else "web"].append(pid)
        return parts

    def start_fake_at(self) -> None:
        self.at_port = free_port()
        self._spawn([sys.executable, "-m", "bench.fake_at", str(self.at_port), self.redis_url], "fake_at")
        _wait_port(self.at_port)

    def start_web(self, app: str = "wsgi:app") -> None:
        self.web_port = free_port()
        bin_dir = Path(sys.executable).parent
        # a metrics folder of its own: gunicorn.conf.py empties it at start, and B1 runs two servers
        metrics = tempfile.mkdtemp(prefix=f"elimu-bench-metrics-{self.web_port}-")
        self.scratch.append(metrics)
        env = dict(self.env(), PROMETHEUS_MULTIPROC_DIR=metrics)
        self._spawn([str(bin_dir / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), app,
                     "--bind", f"127.0.0.1:{self.web_port}", "--workers", str(self.web_workers),
                     "--threads", str(self.web_threads), "--access-logfile", "/dev/null"], "web", env)
        _wait_http(f"{self.base_url}/healthz")

    def start_workers(self, count: int | None = None) -> None:
        bin_dir = Path(sys.executable).parent
        for n in range(count if count is not None else self.sms_workers):
            self._spawn([str(bin_dir / "elimu"), "worker"], f"worker{n}")
        for n in range(self.urgent_workers if count is None else 0):
            self._spawn([str(bin_dir / "elimu"), "worker", "--no-bulk"], f"urgent-worker{n}")

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + 10
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()
        self.roles.clear()
        for folder in self.scratch:
            shutil.rmtree(folder, ignore_errors=True)
        self.scratch.clear()


@contextlib.contextmanager
def running(stack: Stack, *, web: bool = True, workers: bool = True, app: str = "wsgi:app",
            flush: bool = True, fake_at: bool = True) -> Iterator[Stack]:
    if flush:
        stack.redis().flushdb()
    try:
        if fake_at:
            stack.start_fake_at()
        if web:
            stack.start_web(app)
        if workers:
            stack.start_workers()
        yield stack
    finally:
        stack.stop()


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s (see bench/results/logs)")
