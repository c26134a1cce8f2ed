"""Two USSD sessions of one phone at once, on PostgreSQL: each waits for the other's row lock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from menus.services import PinNeeded, Purpose
from registry.models import Guardian, OneTimeCode
from registry.services import accounts
from registry.services.accounts import Keys
from tests.conftest import TEST_SECRET
from tests.pg_waits import Behind
from tests.ussd.support import PHONE, World

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
KEYS = Keys.from_secret(TEST_SECRET)


def test_two_sessions_choosing_a_pin_at_once_keep_the_first_pin(pg_database):
    """Both sessions used the phone's activation code and chose a PIN; the second's transaction runs
    while the first's is open. It must find the account active once the first commits (and keep
    its PIN, as a session after it does), not write its own PIN over the one the first was told
    it has; and adding to an active account, it asks for the PIN entered in its own session."""
    world = World(pg_database, TEST_SECRET)
    learner_id = world.learner()
    with pg_database.transaction() as session:
        session.add(OneTimeCode(phone=PHONE, purpose=Purpose.ACTIVATE.value, learner_id=learner_id,
                                code_hash="used", expires_at=NOW, attempts=0, used_at=NOW, created_at=NOW,
                                updated_at=NOW))
    with pg_database.transaction() as session:
        assert accounts.activate(session, KEYS, PHONE, learner_id, "4826", "s1", NOW)
        second = Behind(pg_database, lambda other: accounts.activate(other, KEYS, PHONE, learner_id, "5937", "s2", NOW))
    with pytest.raises(PinNeeded):
        second.result()
    with pg_database.session() as session:
        guardian = session.scalars(select(Guardian).where(Guardian.phone == PHONE)).one()
        assert KEYS.pin.verify(guardian.pin_hash, "4826")


def test_a_language_chosen_while_a_stop_from_the_phone_commits_is_kept(pg_database):
    """A first language choice (no settings row yet) while a STOP of the same phone inserts that row:
    the choice waits for the STOP's row and then sets its language on it, instead of failing on the
    phone's unique key (the USSD hop answered 'busy' and the choice was lost)."""
    from registry.models import PhoneSetting
    from registry.services.sms_replies import set_opted_out

    with pg_database.transaction() as session:
        set_opted_out(session, PHONE, True)
        choosing = Behind(pg_database, lambda other: accounts.set_language(other, PHONE, "sw"))
    choosing.result()
    with pg_database.session() as session:
        setting = session.get(PhoneSetting, PHONE)
        assert (setting.language, setting.opted_out) == ("sw", True)


def test_wrong_pins_from_parallel_sessions_get_three_tries_in_all(pg_database):
    """Six wrong PINs sent at once from six sessions of one phone: the guardian's row lock makes
    them take turns, so three are counted and the rest find the PIN locked (a lost update of the
    failure count would give each session its own three tries)."""
    from menus.services import PinResult

    World(pg_database, TEST_SECRET).learner()
    World(pg_database, TEST_SECRET).activate(pin="4826")
    start = threading.Barrier(6)
    results: list[object] = []

    def attempt(n: int) -> None:
        start.wait(10)
        with pg_database.transaction() as session:
            results.append(accounts.check_pin(session, KEYS, PHONE, "1397", NOW, f"s{n}").result)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(map(str, results)) == sorted(map(str, [PinResult.WRONG, PinResult.WRONG, PinResult.LOCKED_NOW]
                                                   + [PinResult.LOCKED] * 3))
    with pg_database.session() as session:
        assert session.scalars(select(Guardian.pin_failures).where(Guardian.phone == PHONE)).one() == 3


def test_one_code_checked_by_parallel_sessions_succeeds_once(pg_database):
    """The right activation code sent at once from four sessions of one phone: the code's row lock
    makes them take turns, and a used code is used up, so one succeeds."""
    from menus.services import OtpResult

    learner_id = World(pg_database, TEST_SECRET).learner()
    with pg_database.transaction() as session:
        session.add(OneTimeCode(phone=PHONE, purpose=Purpose.ACTIVATE.value, learner_id=learner_id,
                                code_hash=KEYS.otp.hash("042917"), expires_at=NOW.replace(hour=9), attempts=0,
                                created_at=NOW, updated_at=NOW))
    start = threading.Barrier(4)
    results: list[object] = []

    def attempt() -> None:
        start.wait(10)
        with pg_database.transaction() as session:
            results.append(accounts.check_otp(session, KEYS, PHONE, Purpose.ACTIVATE, "042917", NOW, learner_id).result)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(map(str, results)) == sorted(map(str, [OtpResult.OK] + [OtpResult.EXPIRED] * 3))


def test_two_sessions_resetting_a_pin_at_once_with_one_code_set_one_pin(pg_database):
    """Both sessions used one reset code and chose a new PIN; the second's transaction runs while the
    first's is open. It waits for the account's row, then finds the code spent by the first reset
    (not a second PIN set with the one code)."""
    world = World(pg_database, TEST_SECRET)
    learner_id = world.learner(verified=True)
    world.activate()
    with pg_database.transaction() as session:
        session.add(OneTimeCode(phone=PHONE, purpose=Purpose.PIN_RESET.value, learner_id=learner_id,
                                code_hash="used", expires_at=NOW, attempts=0, used_at=NOW, created_at=NOW,
                                updated_at=NOW))
    with pg_database.transaction() as session:
        assert accounts.reset_pin(session, KEYS, PHONE, "5803", NOW)
        second = Behind(pg_database, lambda other: accounts.reset_pin(other, KEYS, PHONE, "6914", NOW))
    assert second.result() is False
    with pg_database.session() as session:
        guardian = session.scalars(select(Guardian).where(Guardian.phone == PHONE)).one()
        assert KEYS.pin.verify(guardian.pin_hash, "5803")
