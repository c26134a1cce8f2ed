"""The Alembic migrations build the schema on SQLite and PostgreSQL, and agree with the models."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from registry.db import Database
from registry.migrate import pending_changes, upgrade
from registry.models import Base
from tests.conftest import PG_URL, _unavailable


@pytest.fixture
def empty_pg_url():
    """A new, empty PostgreSQL database (no create_all), dropped afterwards."""
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"elimu_migrate_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        _unavailable("PostgreSQL", exc)
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _check(url: str) -> None:
    database = Database(url)
    try:
        upgrade(database.engine)
        assert set(inspect(database.engine).get_table_names()) >= set(Base.metadata.tables)
        assert pending_changes(database.engine) == []
        upgrade(database.engine)  # a second upgrade is a no-op
    finally:
        database.dispose()


def test_migrations_on_sqlite_match_the_models(tmp_path):
    _check(f"sqlite:///{tmp_path / 'migrated.sqlite3'}")


def test_migrations_on_postgresql_match_the_models(empty_pg_url):
    _check(empty_pg_url)


def test_pending_changes_notices_a_model_the_migrations_lack(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'migrated.sqlite3'}")
    upgrade(database.engine)
    with database.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_learners_birth_certificate_no"))
    assert any("ix_learners_birth_certificate_no" in repr(change) for change in pending_changes(database.engine))
    database.dispose()
