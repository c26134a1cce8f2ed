"""The PINs chosen that the registry judges a day per phone (``accounts.judge_chosen_pin``), on
SQLite and PostgreSQL (``database`` fixture). Through USSD: ``tests/ussd/test_pin_review.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from registry.models import AuditEvent
from registry.services import accounts
from registry.services.accounts import CHOICE_LIMIT_ACTION, CHOSEN_ACTION, PIN_CHOICES_PER_DAY
from tests.conftest import TEST_SECRET
from tests.ussd.support import OTHER_PHONE, PHONE, World

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def judge(world: World, pin: str, at: datetime, phone: str = PHONE) -> bool | None:
    with world.db.transaction() as session:
        return accounts.judge_chosen_pin(session, phone, pin, at)


def test_a_day_of_pins_judged_per_phone_then_each_comes_back_a_day_after_it(database):
    """Each PIN judged counts for 24 h (rolling, as the activation misses): past the day's, a PIN
    is not judged (not even a birthday is refused) and the refusal is audited; the first judged
    frees one place a day after it, the others later; another phone has its own."""
    world = World(database, TEST_SECRET)
    world.learner(verified=True)  # Jane, born 5 September
    world.activate()
    for minute in range(PIN_CHOICES_PER_DAY):
        assert judge(world, "0509" if minute % 2 else "5803", NOW + timedelta(minutes=minute)) is bool(minute % 2)
    later = NOW + timedelta(hours=5)
    assert judge(world, "0509", later) is None and judge(world, "5803", later) is None
    assert judge(world, "0509", later, OTHER_PHONE) is False  # no learner of its own: not its birthday
    day = NOW + timedelta(days=1)
    assert judge(world, "0905", day - timedelta(seconds=1)) is None  # the first is not a day old yet
    assert judge(world, "0905", day) is True
    assert judge(world, "0905", day + timedelta(seconds=1)) is None  # the second is still within the day
    with database.session() as session:
        rows = session.query(AuditEvent).filter_by(phone=PHONE).order_by(AuditEvent.id).all()
        assert [row.action for row in rows].count(CHOSEN_ACTION) == PIN_CHOICES_PER_DAY + 1
        limits = [row for row in rows if row.action == CHOICE_LIMIT_ACTION]
        assert len(limits) == 4 and {(row.channel, row.learner_id) for row in limits} == {("ussd", None)}
