"""Attacks on the USSD service found by the security review: what a session's state, a resumed
session or a forged hop must not get past the registry's own checks."""

from __future__ import annotations

from registry.services import accounts
from registry.services.accounts import Keys
from tests.conftest import TEST_SECRET
from tests.ussd.support import PHONE, PIN

KEYS = Keys.from_secret(TEST_SECRET)


def pin_works(world, clock, pin: str) -> bool:
    with world.db.transaction() as session:
        return accounts.check_pin(session, KEYS, PHONE, pin, clock()).result.value == "ok"


def test_a_reset_resumed_long_after_its_code_sets_no_pin(world, ussd, clock):
    """The reset's ``otp_ok`` lives in the session state, and a resumed session saves it again on
    every dial: redialling every few minutes kept the new-PIN screen open for ever, and the PIN it
    took was set with no code used for an hour. The registry now asks for a reset code used within
    the proof window itself."""
    world.learner()
    world.activate()
    phone = ussd()
    phone.script("dial\n> 4\n> 3\n> 12345678\n> 05092014\n> {otp}\n< CON Choose a new 4-digit PIN:\n< ...")
    for _ in range(3):  # the session drops; the phone redials within the resume window, each time
        clock.advance(minutes=4)
        assert phone.dial().startswith("CON Your last session did not finish.")
        assert phone.send("1").startswith("CON Choose a new 4-digit PIN:")
    phone.send("5803")
    assert phone.send("5803") == "END The code has expired. Dial *384*1234# to get a new one."
    assert pin_works(world, clock, PIN) and not pin_works(world, clock, "5803")


def test_a_reset_within_the_proof_window_sets_the_pin(world, clock):
    world.learner(verified=True)
    world.activate()
    with world.db.transaction() as session:
        assert not accounts.reset_pin(session, KEYS, PHONE, "5803", clock())  # no code used
    assert pin_works(world, clock, PIN)
