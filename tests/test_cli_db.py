"""``elimu db``: a revision the code does not know, given or found in the database, is one line, never a traceback."""

from __future__ import annotations

from sqlalchemy import text

from registry.db import Database
from registry.migrate import revisions
from tests.cli_support import run_elimu


def _set_revision(database: Database, revision: str) -> None:
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :rev"), {"rev": revision})


def test_an_upgrade_leaves_a_newer_schema_as_it_is(database, tmp_path):
    """A rollback reinstalls the older release on the newer schema, and the web unit's
    ExecStartPre runs `elimu db upgrade`: it must succeed, not fail on the revision it does not know."""
    _set_revision(database, "0099")
    try:
        result = run_elimu(database, tmp_path, "db", "upgrade")
        assert result.exit_code == 0, result.output
        assert result.stdout == (f"database schema is at 0099, newer than this code's {revisions()[-1]}: "
                                 "left as it is (see docs/deploy.md, Upgrading)\n")
        downgrade = run_elimu(database, tmp_path, "db", "downgrade", revisions()[-2])
        assert downgrade.exit_code == 1 and downgrade.stdout == ""
        assert downgrade.stderr.startswith("Error: the schema is at 0099, which this code does not know: run the "
                                           "downgrade with the release that made it")
        assert len(downgrade.stderr.splitlines()) == 1
        with database.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0099"
    finally:
        _set_revision(database, revisions()[-1])


def test_a_downgrade_to_an_unknown_revision_is_one_line(database, tmp_path):
    for target, reason in (("nosuch", "Can't locate revision identified by 'nosuch'"),
                           ("0099", "Can't locate revision identified by '0099'")):
        result = run_elimu(database, tmp_path, "db", "downgrade", target)
        assert result.exit_code == 1, result.output
        assert result.stderr == (f"Error: cannot take the schema to {target!r}: {reason} (this code's revisions: "
                                 f"{revisions()[0]} to {revisions()[-1]}, and base)\n")
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == revisions()[-1]
