"""Every command answers a missing schema, an unreachable database or Redis with one line and exit 3."""

from __future__ import annotations

from click.testing import CliRunner

from gateway import cli as cli_module
from gateway.runtime import Runtime
from registry.db import Database
from tests.cli_support import SECRET
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
           "ELIMU_SECRET_KEY": SECRET,
           "ELIMU_INSTANCE_PATH": str(tmp_path), "REDIS_URL": None}
    result = CliRunner().invoke(cli_module.cli, ["results", "status"], env=env)
    assert result.exit_code == 3, result.output
    assert result.output == (f"Error: database: cannot create {blocker / 'db'}: Not a directory (set "
                             "ELIMU_INSTANCE_PATH or DATABASE_URL to a place this user can write)\n")


def test_a_redis_database_number_the_server_lacks(tmp_path, sqlite_database, redis_url):
    """A server that refuses the connection's set-up (REDIS_URL naming database 9999) answers
    with an error reply, not a connection error: one line and exit 3 too, never a traceback."""
    wrong = f"{redis_url.rsplit('/', 1)[0]}/9999"
    env = {"DATABASE_URL": sqlite_database.url, "ELIMU_ENV": "development", "ELIMU_SECRET_KEY": SECRET,
           "ELIMU_INSTANCE_PATH": str(tmp_path), "REDIS_URL": wrong}
    runner = CliRunner()
    reconcile = runner.invoke(cli_module.cli, ["sms", "reconcile"], env=env)
    assert reconcile.exit_code == 3, reconcile.output
    assert reconcile.output == "Error: redis: DB index is out of range (is REDIS_URL right and the server up?)\n"
    status = runner.invoke(cli_module.cli, ["sms", "status"], env=env)
    assert status.exit_code == 3, status.output
    assert "queues: Redis refused the connection (DB index is out of range)" in status.output  # the database's part shown
    assert status.output.endswith("Error: redis: refused the connection (DB index is out of range) (the queues are "
                                  "not shown; is REDIS_URL right and the server up?)\n")


def test_sentinels_that_find_no_master_are_one_readable_line(tmp_path, sqlite_database):
    """redis-py's MasterNotFoundError carries the whole client's repr (pools, options, object
    addresses): the line names the master and the sentinels' answer, and what to check."""
    env = {"DATABASE_URL": sqlite_database.url, "ELIMU_ENV": "development", "ELIMU_SECRET_KEY": SECRET,
           "ELIMU_INSTANCE_PATH": str(tmp_path), "REDIS_URL": None, "ELIMU_REDIS_SENTINELS": "127.0.0.1:1"}
    result = CliRunner().invoke(cli_module.cli, ["sms", "reconcile"], env=env)
    assert result.exit_code == 3, result.output
    assert result.output.startswith("Error: redis: No master found for 'mymaster' (network:ConnectionError: ")
    assert result.output.endswith("127.0.0.1:1. Connection refused.): are ELIMU_REDIS_SENTINELS and "
                                  "ELIMU_REDIS_SENTINEL_MASTER right and the sentinels up?\n")
    assert "<redis." not in result.output and result.output.count("\n") == 1
