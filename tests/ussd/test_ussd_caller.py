"""The caller read: a phone's language and standing in one statement, kept for its session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import event

from gateway.ussd.caller import CALLER_TTL, CallerServices
from menus.services import Account
from registry.models import Guardian
from registry.services import accounts
from registry.services.accounts import Caller
from tests.conftest import TEST_SECRET
from tests.ussd.support import PHONE, STRANGER, World

NOW = datetime(2026, 1, 9, 10, 0, tzinfo=UTC)


def _both(db, phone: str) -> tuple[str | None, Caller]:
    with db.autocommit() as connection:
        return accounts.language(connection, phone), accounts.caller(connection, phone)


def test_caller_read_agrees_with_language_and_account(database):
    world = World(database, TEST_SECRET)
    world.learner()
    world.learner(upi="B7K9M2", birth_cert="777", assessment=None, phones=("+254733000111",))
    world.activate("+254733000111")
    with database.transaction() as session:
        accounts.set_language(session, STRANGER, "sw")  # a phone with a language and no guardian row
        accounts.set_language(session, PHONE, "sw")
        session.query(Guardian).filter_by(phone="+254733000111").one().pin_locked_until = NOW + timedelta(minutes=7)
        session.add(Guardian(phone="+254700000009"))  # a guardian row with no learner linked
    seen = {}
    for phone in (PHONE, STRANGER, "+254733000111", "+254700000009", "+254799999999"):
        language, caller = _both(database, phone)
        assert caller.language == language
        assert accounts.read_caller(database, phone) == caller  # the hop's read, through Database.fetch
        seen[phone] = caller.account(NOW)
    assert seen[PHONE] == Account(linked=True, active=False)
    assert seen["+254733000111"] == Account(linked=True, active=True, locked_minutes=7)
    assert seen["+254700000009"] == Account(linked=False, active=False)
    assert seen[STRANGER] == seen["+254799999999"] == Account(linked=False, active=False)
    assert [_both(database, phone)[1].language for phone in (PHONE, STRANGER, "+254733000111")] == ["sw", "sw", None]


class CountingServices:
    """Stands in for RegistryServices: counts the reads and passes a PIN check."""

    def __init__(self) -> None:
        self.reads = 0
        self.checks = 0
        self.standing = Caller(language="sw", linked=True, active=True)

    def caller(self, phone: str) -> Caller:
        self.reads += 1
        return self.standing

    def language(self, phone: str) -> str | None:
        return "en"

    def account(self, phone: str) -> Account:
        return Account(linked=False, active=False)

    def check_pin(self, phone: str, pin: str) -> str:
        self.checks += 1
        return "ok"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def test_one_read_answers_the_session_until_another_service_is_called():
    inner, clock = CountingServices(), Clock()
    hop1 = CallerServices(inner, PHONE, None, clock)
    assert hop1.language(PHONE) == "sw"
    assert hop1.account(PHONE) == Account(linked=True, active=True)
    saved = hop1.saved_memo()
    assert inner.reads == 1

    clock.now += timedelta(seconds=20)
    hop2 = CallerServices(inner, PHONE, saved, clock)  # the next hop, from the session record
    assert hop2.account(PHONE).active
    assert inner.reads == 1
    assert hop2.check_pin(PHONE, "4826") == "ok"  # may change the standing: the read is dropped
    inner.standing = Caller(language="sw", linked=True, active=True, locked_until=NOW + timedelta(minutes=30))
    assert hop2.account(PHONE).locked_minutes == 30
    assert (inner.reads, inner.checks) == (2, 1)

    clock.now += timedelta(seconds=CALLER_TTL + 1)  # too old: read again
    hop3 = CallerServices(inner, PHONE, hop2.saved_memo(), clock)
    hop3.language(PHONE)
    assert inner.reads == 3
    assert hop3.account(PHONE).locked_minutes == 29  # minutes counted from the lock time, not the read


def test_other_phones_and_unreadable_memos_go_to_the_registry():
    inner, clock = CountingServices(), Clock()
    services = CallerServices(inner, PHONE, ["not", "a", "memo"], clock)
    assert services.language(STRANGER) == "en"
    assert services.account(STRANGER) == Account(linked=False, active=False)
    assert services.saved_memo() is None
    assert inner.reads == 0
    assert CallerServices(inner, PHONE, None, clock).saved_memo() is None


def test_a_session_reads_the_registry_once_for_language_and_standing(ussd, world):
    world.learner()
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(world.db.engine, "before_cursor_execute", count)
    try:
        phone = ussd()
        phone.dial()
        phone.send("1")
        assert phone.send("12345678").startswith("CON Enter the learner's date of birth")
    finally:
        event.remove(world.db.engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements  # the caller read; hop 2's standing came from the session


def test_the_code_hop_reads_the_caller_and_the_send_limits_once(ussd, world):
    """The hop that sends an activation code: one read of the caller (standing and the SMS's
    language together) and one of the send limits, then the code and its SMS written."""
    world.learner()
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        statements.append(" ".join(statement.split()))

    phone = ussd()
    phone.dial()
    phone.send("1")
    phone.send("12345678")
    event.listen(world.db.engine, "before_cursor_execute", count)
    try:
        assert phone.send("05092014").startswith("CON We sent a 6-digit code by SMS")
    finally:
        event.remove(world.db.engine, "before_cursor_execute", count)
    selects = [s for s in statements if s.upper().startswith("SELECT")]
    assert sum("FROM phone_settings" in s for s in selects) == 1, selects
    assert sum("FROM one_time_codes" in s for s in selects) == 1, selects
    assert len(selects) == 3, selects  # the caller, the send limits, the learners linked with their index numbers
    inserts = [s.split("(")[0] for s in statements if s.upper().startswith("INSERT")]
    assert inserts == ["INSERT INTO one_time_codes ", "INSERT INTO outbound_messages "], statements
    # the phone's sending lock: on PostgreSQL inside the caller read, on SQLite a write that
    # changes nothing (its write lock), before the send limits are read
    locks = 0 if world.db.engine.dialect.name == "postgresql" else 1
    assert [s.split(" SET")[0] for s in statements if s.upper().startswith("UPDATE")] == [
        "UPDATE one_time_codes"] * locks, statements
    assert len(statements) == 5 + locks, statements  # and nothing else on the way
    limits = next(n for n, s in enumerate(statements) if "FROM one_time_codes" in s)
    assert all(not s.startswith("UPDATE") for s in statements[limits:]), statements
