"""The choose-PIN screens' limit through USSD on PostgreSQL and Redis (the review of the PIN changes):
the policy refuses the learners' birthdays, so each PIN judged tells whether it is one."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from registry.models import AuditEvent
from registry.services import accounts
from registry.services.accounts import CHOICE_LIMIT_ACTION, CHOSEN_ACTION, PIN_CHOICES_PER_DAY
from tests.conftest import TEST_SECRET
from tests.pg_waits import Behind
from tests.ussd.support import PHONE, PIN, World

CHOOSE = {"en": "CON Choose a new 4-digit PIN:", "sw": "CON Chagua PIN mpya ya tarakimu 4:"}
CONFIRM = {"en": "CON Enter the PIN again to confirm:", "sw": "CON Weka PIN tena kuthibitisha:"}
RESUME = {"en": "CON Your last session did not finish.", "sw": "CON Hukumaliza ulichokuwa ukifanya mara ya mwisho."}
TOO_MANY = {"en": "END Too many PINs tried. Dial *384*1234# and start again",
            "sw": "END Umejaribu PIN nyingi mno. Piga *384*1234# uanze upya"}
DAY_LIMIT = {"en": "END Too many PINs tried on this phone today. Try again tomorrow, or visit the school for help.",
             "sw": "END PIN nyingi mno zimejaribiwa kwa simu hii leo. Jaribu tena kesho, au tembelea shule upate msaada."}
# PINs the policy takes (none a year, a repeat, a run or Jane's birthday): each goes to the confirm screen
TAKEN = [f"{day:02d}{month:02d}" for month in (3, 5) for day in range(10, 19)]


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_reset_session_tries_no_more_than_six_dates_even_continued(real_stack, real_ussd, lang):
    """Past a reset code (one learner's details), dates were tried for the other learner's birthday:
    each PIN taken went to the confirm screen and ``0`` came back, uncounted, so only a birthday
    found counted. Now six PINs judged, in a session and its continuation in a new dial, end it, and
    the seventh (here the other learner's birthday) is not judged: nothing tells it."""
    _, _, world, _ = real_stack
    world.learner(verified=True)
    world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None,
                  born=date(2016, 3, 17), verified=True)
    world.activate()
    phone = real_ussd()
    if lang == "sw":
        phone.script("dial\n> 4\n> 2\n> 2")
    phone.script(f"dial\n> 4\n> 3\n> 12345678\n> 05092014\n> {{otp}}\n< {CHOOSE[lang]}\n< ...")
    for day in ("0803", "1003", "1103"):
        assert phone.send(day).startswith(CONFIRM[lang])
        assert phone.send("0").startswith(CHOOSE[lang])
    assert phone.dial().startswith(RESUME[lang])
    assert phone.send("1").startswith(CHOOSE[lang])
    for day in ("1203", "1303", "1403"):
        assert phone.send(day).startswith(CONFIRM[lang])
        assert phone.send("0").startswith(CHOOSE[lang])
    assert phone.send("1703").startswith(TOO_MANY[lang])
    assert not phone.dial().startswith(RESUME[lang])  # the END dropped the resume point


def _actions(world, action: str) -> int:
    with world.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action))


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_pins_judged_are_limited_per_phone_per_day_across_dials(real_stack, real_ussd, lang):
    """The six PINs judged in a session started again with each dial: whoever held the phone could
    change the PIN dial after dial, trying a dozen dates a dial for the learners' birthdays. Now the
    registry judges at most ``PIN_CHOICES_PER_DAY`` a day per phone: past them the next PIN chosen,
    in any dial, ends the session unjudged (and audited), until the first judged is a day old."""
    clock, _, world, _ = real_stack
    world.learner(verified=True)
    world.activate()
    phone = real_ussd()
    if lang == "sw":
        phone.script("dial\n> 4\n> 2\n> 2")
    pins = iter(TAKEN)
    for _ in range(PIN_CHOICES_PER_DAY // 6):
        phone.script(f"redial\n> 4\n> 1\n> {PIN}\n< {CHOOSE[lang]}\n< ...")
        for _ in range(6):
            assert phone.send(next(pins)).startswith(CONFIRM[lang])
            assert phone.send("0").startswith(CHOOSE[lang])
        assert phone.send(next(pins)).startswith(TOO_MANY[lang])

    def change() -> str:
        phone.script(f"redial\n> 4\n> 1\n> {PIN}\n< {CHOOSE[lang]}\n< ...")
        return phone.send("5803")

    assert change() == DAY_LIMIT[lang]
    assert change() == DAY_LIMIT[lang]
    assert (_actions(world, CHOSEN_ACTION), _actions(world, CHOICE_LIMIT_ACTION)) == (PIN_CHOICES_PER_DAY, 2)
    clock.advance(hours=23, minutes=59)
    assert change() == DAY_LIMIT[lang]
    clock.advance(minutes=1)  # the PINs judged are a day old: a new day's
    assert change().startswith(CONFIRM[lang])
    assert phone.send("5803") == {"en": "END Your PIN has been changed.", "sw": "END PIN yako imebadilishwa."}[lang]


def test_a_parent_who_used_a_session_of_pins_still_activates_the_next_dial(real_stack, real_ussd):
    """The daily limit leaves room for a parent: six easy PINs end the first session, and in the
    next dial (a new code) an easy one, a mistyped confirmation and the PIN again still finish."""
    clock, _, world, _ = real_stack
    world.learner()
    phone = real_ussd()
    activation = "redial\n> 1\n> 12345678\n> 05092014\n> {otp}\n< CON Choose a 4-digit PIN:\n< ..."
    phone.script(activation)
    for easy in ("1234", "1111", "2014", "0000", "1990"):
        assert phone.send(easy).startswith("CON That PIN is too easy to guess")
    assert phone.send("4321").startswith(TOO_MANY["en"])
    clock.advance(minutes=2)
    phone.script(activation)
    assert phone.send("1234").startswith("CON That PIN is too easy to guess")
    assert phone.send("5803").startswith(CONFIRM["en"])
    assert phone.send("5830").startswith("CON The PINs did not match.")
    assert phone.send("5803").startswith(CONFIRM["en"])
    assert phone.send("5803").startswith("END Your account is active.")
    assert _actions(world, CHOSEN_ACTION) == 9 and _actions(world, CHOICE_LIMIT_ACTION) == 0


@pytest.mark.postgres
def test_two_sessions_choosing_at_once_are_counted_one_after_the_other(pg_database):
    """Two sessions of one phone judging its last PIN of the day at once each counted the PINs
    judged before the other committed; now the second waits for the first and is refused."""
    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    world = World(pg_database, TEST_SECRET)
    world.learner(verified=True)
    world.activate()
    with pg_database.transaction() as session:
        for pin in TAKEN[:PIN_CHOICES_PER_DAY - 1]:
            assert accounts.judge_chosen_pin(session, PHONE, pin, now) is False
    with pg_database.transaction() as session:
        assert accounts.judge_chosen_pin(session, PHONE, "0509", now) is True  # Jane's birthday
        second = Behind(pg_database, lambda other: accounts.judge_chosen_pin(other, PHONE, "0905", now))
    assert second.result() is None
    assert (_actions(world, CHOSEN_ACTION), _actions(world, CHOICE_LIMIT_ACTION)) == (PIN_CHOICES_PER_DAY, 1)


EASY = {"en": "CON That PIN is too easy to guess", "sw": "CON PIN hiyo ni rahisi mno kukisia"}
FIRST_PIN = {"en": "CON Choose a 4-digit PIN:", "sw": "CON Chagua PIN ya tarakimu 4:"}
ACTIVE = {"en": "END Your account is active.", "sw": "END Akaunti yako imefunguliwa."}


def _spend_pins_on_activation(clock, phone, lang: str) -> None:
    """Two activation sessions of easy PINs: the phone's PINs of the day used up, not yet active."""
    for _ in range(PIN_CHOICES_PER_DAY // 6):
        phone.script(f"redial\n> 1\n> 12345678\n> 05092014\n> {{otp}}\n< {FIRST_PIN[lang]}\n< ...")
        for easy in ("1234", "1111", "2014", "0000", "1990"):
            assert phone.send(easy).startswith(EASY[lang])
        assert phone.send("4321").startswith(TOO_MANY[lang])
        clock.advance(minutes=2)


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_phone_past_its_pins_of_the_day_is_told_before_an_activation_code_is_sent(real_stack, real_ussd, lang):
    """A parent who had used the phone's PINs of the day learned it only after entering the new
    activation code: the code was spent (and paid for) on a PIN that could not be chosen. Now the
    details are answered with the day's limit at once, no code sent, nothing matched or counted as
    a miss (the limit is the phone's, whatever the details), and a day later activation goes through."""
    clock, sms, world, _ = real_stack
    world.learner()
    phone = real_ussd()
    if lang == "sw":
        phone.script("dial\n> 4\n> 2\n> 2")
    _spend_pins_on_activation(clock, phone, lang)
    sent = len(sms.otps(PHONE))
    for details in ("> 12345678\n> 05092014", "> 99999999\n> 01012015"):  # right or wrong, alike
        phone.script(f"redial\n> 1\n{details}\n< {DAY_LIMIT[lang]}")
    assert len(sms.otps(PHONE)) == sent
    assert _actions(world, CHOICE_LIMIT_ACTION) == 2 and _actions(world, accounts.MISS_ACTION) == 0
    with world.db.transaction() as session:
        details = session.scalars(select(AuditEvent.detail).where(AuditEvent.action == CHOICE_LIMIT_ACTION)).all()
    assert details == ["activate: refused before the code"] * 2
    clock.advance(hours=24)
    activated = phone.script("redial\n> 1\n> 12345678\n> 05092014\n> {otp}\n> 5803\n> 5803")[-1]
    assert activated.startswith(ACTIVE[lang]), activated


def test_a_reset_past_the_pins_of_the_day_is_refused_before_its_code(real_stack, real_ussd):
    """The same for a forgotten PIN: past the day's PINs (here spent on PIN changes) the reset's
    details get the day's limit and no code; adding a learner, which chooses no PIN, is not held up."""
    clock, sms, world, _ = real_stack
    world.learner(verified=True)
    world.activate()
    phone = real_ussd()
    pins = iter(TAKEN)
    for _ in range(PIN_CHOICES_PER_DAY // 6):
        phone.script(f"redial\n> 4\n> 1\n> {PIN}\n< {CHOOSE['en']}\n< ...")
        for _ in range(6):
            assert phone.send(next(pins)).startswith(CONFIRM["en"])
            assert phone.send("0").startswith(CHOOSE["en"])
        assert phone.send(next(pins)).startswith(TOO_MANY["en"])
    phone.script(f"redial\n> 4\n> 3\n> 12345678\n> 05092014\n< {DAY_LIMIT['en']}")
    assert sms.otps(PHONE) == []
    with world.db.transaction() as session:
        details = session.scalars(select(AuditEvent.detail).where(AuditEvent.action == CHOICE_LIMIT_ACTION)).all()
    assert details == ["pin_reset: refused before the code"]
    world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None,
                  born=date(2016, 3, 17))
    phone.script(f"redial\n> 1\n> {PIN}\n> 777\n> 17032016\n< CON We sent a 6-digit code by SMS. Enter it:\n< ...")
    assert len(sms.otps(PHONE)) == 1
