"""Every command answers a missing schema, an unreachable database or Redis, or a change the database
refuses (a duplicate key, a value too long) with one line and exit 3."""

from __future__ import annotations

from datetime import date

from click.testing import CliRunner
from sqlalchemy import func, insert, select

from gateway import cli as cli_module
from gateway.runtime import Runtime
from registry.db import Database
from registry.importer.results import ResultWriter
from registry.models import Guardian, Institution, Learner
from tests.cli_support import SECRET, run_elimu
from tests.conftest import make_settings, unreachable_redis
from tests.registry.support import write_results


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


def _institution(code: str) -> dict[str, str]:
    return {"code": code, "name": "Kilimani Primary", "county_code": "047"}


def test_a_duplicate_key_raced_in_by_another_process_is_one_line(database, tmp_path, monkeypatch):
    """A unique key another process took first (here the school the command adds, added twice in
    its transaction, as a concurrent import would have it): one line and exit 3, not the
    IntegrityError's traceback; nothing of the command is kept."""
    from gateway.cli import registry as registry_cli

    def racing_unlink(session, *args, **kwargs):
        session.execute(insert(Institution), [_institution("RACE1"), _institution("RACE1")])
        raise AssertionError("the database took a duplicate code")

    monkeypatch.setattr(registry_cli, "unlink_guardian", racing_unlink)
    result = run_elimu(database, tmp_path, "registry", "unlink-guardian", "ZQ6NFN", "0712345678")
    assert result.exit_code == 3, result.output
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: database refused the change: ")
    assert ("UNIQUE constraint failed: institutions.code" if database.is_sqlite else
            'duplicate key value violates unique constraint "uq_institutions_code"') in result.stderr
    assert result.stderr.endswith(" (another process changing the same records at the same moment? nothing of "
                                  "it was written: run the command again)\n")
    assert result.stderr.count("\n") == 1
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Institution)) == 0


def test_an_import_the_database_refuses_a_batch_of_prints_what_it_wrote(database, tmp_path, monkeypatch):
    """A batch refused for a duplicate key on every retry: the counts of the batches written and
    the line it stopped at, then one line (exit 3), not a traceback."""
    rows = [{"exam": "KCSE", "year": "2025", "index_number": f"{36611000000 + i:011d}", "upi": "",
             "candidate_name": f"Candidate {i}", "mean_grade": "B", "points": "", "subjects": ""} for i in range(1500)]
    path = write_results(tmp_path / "r.csv", rows)
    real = ResultWriter.write

    def write(self, session, batch):
        if batch[-1].line >= 1002:
            session.execute(insert(Institution), [_institution("RACE1"), _institution("RACE1")])
        return real(self, session, batch)

    monkeypatch.setattr(ResultWriter, "write", write)
    monkeypatch.setattr("registry.importer.batches.time.sleep", lambda _seconds: None)
    done = run_elimu(database, tmp_path, "registry", "import-results", str(path))
    assert done.exit_code == 3, done.output
    assert done.stdout.startswith("added 1000, updated 0, unchanged 0, rejected 0 (1000 rows in ")
    assert done.stdout.endswith("; the import stopped at line 1002: that line and those after it were not all "
                                "imported; import the file again once the error is put right (rows already "
                                "imported count as unchanged)\n")
    assert done.stderr.startswith("Error: database refused the change: ") and done.stderr.count("\n") == 1


def test_a_value_too_long_for_its_column_is_one_line(pg_database, tmp_path, monkeypatch):
    """PostgreSQL refuses a value longer than its column (DataError; SQLite stores it): a login
    name too long for the audit row of an export is one line and exit 3, and nothing is shown."""
    with pg_database.transaction() as session:
        school = Institution(**_institution("NB7K"))
        session.add(Learner(upi="ZQ6NFN", first_name="Jane", last_name="Kamau", date_of_birth=date(2016, 5, 14),
                            gender="F", grade="Grade 4", institution=school))
        session.add(Guardian(phone="+254712345678", name="Mary Kamau"))
    monkeypatch.setenv("SUDO_USER", "x" * 300)
    result = run_elimu(pg_database, tmp_path, "privacy", "export", "0712345678")
    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    assert result.stderr == ("Error: database refused a value: value too long for type character varying(200) "
                             "(nothing of it was written)\n")
