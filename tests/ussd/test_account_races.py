"""Two USSD sessions of one phone at once, on PostgreSQL: each waits for the other's row lock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from menus.services import Purpose
from registry.db import Database
from registry.models import Guardian, OneTimeCode
from registry.services import accounts
from registry.services.accounts import Keys
from tests.conftest import TEST_SECRET
from tests.ussd.support import PHONE, World

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
KEYS = Keys.from_secret(TEST_SECRET)


def wait_until_blocked(database: Database) -> None:
    """Until a connection to the test's database waits on a lock (a state PostgreSQL reports, not a
    guess at how long the other thread takes)."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND wait_event_type = 'Lock'")
    for _ in range(2000):
        with database.engine.connect() as conn:
            if conn.scalar(query):
                return
        threading.Event().wait(0.005)
    raise AssertionError("the second session never waited for a lock")


def test_two_sessions_choosing_a_pin_at_once_keep_the_first_pin(pg_database):
    """Both sessions used the phone's activation code and chose a PIN; the second's transaction runs
    while the first's is open. It must find the account active once the first commits (and keep
    its PIN, as a session after it does), not write its own PIN over the one the first was told
    it has."""
    world = World(pg_database, TEST_SECRET)
    learner_id = world.learner()
    with pg_database.transaction() as session:
        session.add(OneTimeCode(phone=PHONE, purpose=Purpose.ACTIVATE.value, learner_id=learner_id,
                                code_hash="used", expires_at=NOW, attempts=0, used_at=NOW, created_at=NOW,
                                updated_at=NOW))
    outcome: list[object] = []

    def second() -> None:
        try:
            with pg_database.transaction() as session:
                outcome.append(accounts.activate(session, KEYS, PHONE, learner_id, "5937", "s2", NOW))
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            outcome.append(exc)

    with pg_database.transaction() as session:
        assert accounts.activate(session, KEYS, PHONE, learner_id, "4826", "s1", NOW)
        thread = threading.Thread(target=second)
        thread.start()
        wait_until_blocked(pg_database)
    thread.join(10)
    assert outcome == [True]
    with pg_database.session() as session:
        guardian = session.scalars(select(Guardian).where(Guardian.phone == PHONE)).one()
        assert KEYS.pin.verify(guardian.pin_hash, "4826")


def test_a_language_chosen_while_a_stop_from_the_phone_commits_is_kept(pg_database):
    """A first language choice (no settings row yet) while a STOP of the same phone inserts that row:
    the choice waits for the STOP's row and then sets its language on it, instead of failing on the
    phone's unique key (the USSD hop answered 'busy' and the choice was lost)."""
    from registry.models import PhoneSetting
    from registry.services.sms_replies import set_opted_out

    failures: list[BaseException] = []

    def choose() -> None:
        try:
            with pg_database.transaction() as session:
                accounts.set_language(session, PHONE, "sw")
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            failures.append(exc)

    with pg_database.transaction() as session:
        set_opted_out(session, PHONE, True)
        thread = threading.Thread(target=choose)
        thread.start()
        wait_until_blocked(pg_database)
    thread.join(10)
    assert failures == []
    with pg_database.session() as session:
        setting = session.get(PhoneSetting, PHONE)
        assert (setting.language, setting.opted_out) == ("sw", True)
