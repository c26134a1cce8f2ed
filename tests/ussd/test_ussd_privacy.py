"""Privacy: an unlinked phone learns nothing about any learner, and no log line carries a secret."""

from __future__ import annotations

import logging
import re
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ussd.support import OTHER_PHONE, PHONE, PIN, STRANGER

LEARNERS = [
    dict(first="Wanjiru", last="Kamau", upi="KQ7T2M", birth_cert="11112222", assessment="A1000",
         born=date(2013, 4, 1), school="SC01", school_name="Mukuru Kwa Njenga Primary", phones=(PHONE,)),
    dict(first="Odhiambo", last="Ouma", upi="ZP4R8N", birth_cert="33334444", assessment="A2000",
         born=date(2012, 7, 9), school="SC02", school_name="Kakamega Hill Secondary", phones=(OTHER_PHONE,)),
]
SECRETS = ["Wanjiru", "Kamau", "KQ7T2M", "Odhiambo", "Ouma", "ZP4R8N", "Mukuru", "Kakamega"]
# What a stranger might try: the real identifiers and birth dates included.
GUESSES = ["", "0", "00", "1", "2", "3", "4", "98", "11112222", "33334444", "A1000", "01042013", "09072012",
           PIN, "1111", "000000", "123456", "KQ7T2M"]


def seed(world) -> None:
    for learner in LEARNERS:
        world.learner(**learner)
    world.activate(PHONE)


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s.lower() in text.lower()]


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(inputs=st.lists(st.sampled_from(GUESSES), max_size=7), sw=st.booleans())
def test_unlinked_phone_sees_no_learner_data(stack, inputs, sw):
    _, sms, world, _ = stack
    from registry.models import Learner

    with world.db.transaction() as session:
        seeded = session.query(Learner).count() > 0
    if not seeded:
        seed(world)
    phone = stack_phone(stack)
    screens = [phone.dial()]
    for value in (["4", "2", "2"] if sw else []) + inputs:
        if screens[-1].startswith("END "):
            break
        screens.append(phone.send(value))
    for screen in screens:
        assert not leaks(screen), screen
    assert sms.messages(STRANGER) == []


def stack_phone(stack):
    from tests.ussd.support import Phone

    return Phone(stack[3], stack[1], STRANGER)


def test_no_secret_in_any_log_line(world, ussd, sms, clock, caplog):
    """Every flow with logging at DEBUG: no OTP, PIN, UPI, full name or phone number in a record."""
    caplog.set_level(logging.DEBUG)
    for learner in LEARNERS:
        world.learner(**learner)
    phone = ussd()
    phone.script("dial\n> 1\n> 11112222\n> 01042013\n> {otp}\n> 5821\n> 5821\n< END Your account is active.\n< ...")
    clock.advance(seconds=61)
    phone.script("dial\n> 2\n> 5821\n> {otp}\n< END The UPI of Wanjiru K. will come by SMS.")
    phone.script("dial\n> 3\n> 5821\n< END Wanjiru K. (Grade 6)\n< ...")
    clock.advance(seconds=61)
    phone.script("dial\n> 4\n> 3\n> 11112222\n> 01042013\n> {otp}\n> 6942\n> 6942\n< END Your PIN has been reset.\n< ...")
    phone.script("dial\n> 3\n> 0000\n> 1111\n> 2222\n< END Wrong PIN 3 times.\n< ...")
    ussd(STRANGER).script("dial\n> 1\n< END This phone is not on any school record.\n< ...")
    secrets = {"5821", "6942", "KQ7T2M", "Wanjiru Kamau", "Kamau", "11112222", PHONE, PHONE[1:], "0712345678",
               *sms.otps(PHONE)}
    standard = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "request_id"}
    logged = "\n".join(
        " ".join([r.getMessage(), r.exc_text or ""]
                 + [v for k, v in r.__dict__.items() if k not in standard and isinstance(v, str)])
        for r in caplog.records
    )
    assert "ussd hop" in logged  # the hop handler's own lines were captured too
    # Whole tokens only: a random request id or a counter may contain the digits of a PIN by chance.
    assert [s for s in secrets if re.search(rf"(?<![0-9A-Za-z]){re.escape(s)}(?![0-9A-Za-z])", logged)] == []
