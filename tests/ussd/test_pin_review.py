"""The choose-PIN screens' limit through USSD on PostgreSQL and Redis (the review of the PIN changes):
the policy refuses the learners' birthdays, so each PIN judged tells whether it is one."""

from __future__ import annotations

from datetime import date

import pytest

CHOOSE = {"en": "CON Choose a new 4-digit PIN:", "sw": "CON Chagua PIN mpya ya tarakimu 4:"}
CONFIRM = {"en": "CON Enter the PIN again to confirm:", "sw": "CON Weka PIN tena kuthibitisha:"}
RESUME = {"en": "CON Your last session did not finish.", "sw": "CON Hukumaliza ulichokuwa ukifanya mara ya mwisho."}
TOO_MANY = {"en": "END Too many PINs tried. Dial *384*1234# and start again",
            "sw": "END Umejaribu PIN nyingi mno. Piga *384*1234# uanze upya"}


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
