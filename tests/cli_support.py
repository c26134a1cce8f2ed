"""Running ``elimu`` commands in-process against a test database."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from gateway.cli import cli
from registry.db import Database

SECRET = "test-secret-key-0123456789abcdef"


def run_elimu(database: Database | str, tmp_path: Path, *args: str, stdin: bytes | None = None) -> Result:
    """``elimu ARGS`` with DATABASE_URL pointing at ``database`` (and ``stdin`` as its standard
    input); stdout and stderr kept apart."""
    url = database if isinstance(database, str) else database.url
    env = {"DATABASE_URL": url, "ELIMU_ENV": "development", "ELIMU_SECRET_KEY": SECRET,
           "ELIMU_INSTANCE_PATH": str(tmp_path), "REDIS_URL": None, "SMS_BACKEND": None}  # fmt: skip
    return CliRunner().invoke(cli, list(args), input=stdin, env=env, catch_exceptions=False)
