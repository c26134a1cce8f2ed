"""Every command answers a missing schema, an unreachable database or Redis with one line and exit 3."""

from __future__ import annotations

from click.testing import CliRunner

from gateway import cli as cli_module
from gateway.runtime import Runtime
from registry.db import Database
from tests.conftest import make_settings, unreachable_redis


def _invoke(monkeypatch, runtime: Runtime, *args: str):
    monkeypatch.setattr(cli_module.Context, "runtime", property(lambda self: runtime))
    return CliRunner().invoke(cli_module.cli, list(args))


def test_unmigrated_database(monkeypatch, tmp_path, fake_redis):
    empty = Database(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    runtime = Runtime.build(make_settings(tmp_path, empty), db=empty, redis=fake_redis)
    for args in (["messages"], ["audit", "--phone", "0712345678"], ["purge"]):
        result = _invoke(monkeypatch, runtime, *args)
        assert result.exit_code == 3, (args, result.output)
        assert "elimu db upgrade" in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_unreachable_redis(monkeypatch, runtime):
    runtime.redis = unreachable_redis()
    result = _invoke(monkeypatch, runtime, "sms", "reconcile")
    assert result.exit_code == 3 and result.output.startswith("Error: redis:")


def test_a_database_folder_that_cannot_be_made(tmp_path):
    """A SQLite database whose folder cannot be made (under a file, or where the user may not
    write): one line, exit 3."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {"DATABASE_URL": f"sqlite:///{blocker / 'db' / 'elimu.sqlite3'}", "ELIMU_ENV": "development",
           "ELIMU_SECRET_KEY": "test-secret-key-0123456789abcdef",
           "ELIMU_INSTANCE_PATH": str(tmp_path), "REDIS_URL": None}
    result = CliRunner().invoke(cli_module.cli, ["results", "status"], env=env)
    assert result.exit_code == 3, result.output
    assert result.output == (f"Error: database: cannot create {blocker / 'db'}: Not a directory (set "
                             "ELIMU_INSTANCE_PATH or DATABASE_URL to a place this user can write)\n")
