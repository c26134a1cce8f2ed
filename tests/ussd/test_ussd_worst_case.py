"""Worst-case registry data through the real endpoint: 80-character names, 200-character school names
with accents, many learners. Every screen stays within 160 characters of printable ASCII, and long
names are shortened at a word, never cut mid-screen."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from registry.models import Transfer, TransferState
from tests.ussd.support import PIN

SCHOOL = ("St. Bakhita Nyaw\u0129ra Kiambu Mixed Day and Boarding Comprehensive Secondary School of the Holy "
          "Ghost Fathers and the Sisters of Mercy, Lower Kabete Road, Westlands Sub-County, Nairobi City County")[:200]
OTHER = "Our Lady of Perpetual Help Nyandarua Girls' Junior Secondary Academy and Boarding Primary School"
FIRST = "Wanjikumuthonimainawairimunyambura" * 2  # 68 characters, one word
LAST = "Kamau-Njoroge-Otieno-Wafula-Achieng"
GRADES = ["Grade 12", "Form 4", "PP1", "Grade 6", "Grade 10", "Form 3", "PP2", "Grade 9"]


def well_formed(screen: str) -> None:
    assert len(screen) <= 160, (len(screen), screen)
    assert all(ch == "\n" or " " <= ch <= "~" for ch in screen), screen
    assert screen.startswith(("CON ", "END "))


def assert_whole_words(line: str, name: str) -> None:
    """``line`` is ``name`` shortened at words (abbreviated words allowed), ending with a word or ``.``."""
    words = set(name.replace("\u0129", "i").replace(",", "").split()) | {"Sch.", "Sec.", "Mxd.", "Comp.", "Brdg."}
    shown = line.split(" ")
    assert shown[-1].endswith(".") or shown[-1] in words, line
    assert all(word.rstrip(".") in {w.rstrip(".") for w in words} for word in shown), line


@pytest.fixture
def crowded(world):
    """Eight learners with worst-case names on one activated phone, in every enrolment state."""
    ids = []
    for i, grade in enumerate(GRADES):
        ids.append(world.learner(first=f"{FIRST[: 80 - i]}", last=LAST, upi=f"UPI{i:03d}", birth_cert=f"BC{i}",
                                 assessment=None, grade=grade, school="LONG", school_name=SCHOOL,
                                 born=date(2010 + i % 5, 1, 1 + i)))
    other = world.school("OTHR", OTHER)
    with world.db.transaction() as session:
        for learner, state in zip(ids[1:4], (TransferState.REQUESTED, TransferState.RELEASED, TransferState.ADMITTED),
                                  strict=True):
            session.add(Transfer(learner_id=learner, from_institution_id=other if state is TransferState.RELEASED
                                 else world.school("LONG"), to_institution_id=other, state=state,
                                 admitted_at=datetime(2026, 1, 12, tzinfo=UTC)))
    for exam, year in (("KCSE", 2025), ("KJSEA", 2025), ("KPSEA", 2022), ("KCPE", 2021), ("KCSE", 2024)):
        world.result(ids[0], exam, year, f"3661103{year}{exam[:2]}")
    world.activate()
    return ids


@pytest.mark.parametrize("lang_keys", [[], ["4", "2", "2"]], ids=["en", "sw"])
def test_every_learner_list_page_and_status_screen(crowded, ussd, lang_keys):
    phone = ussd()
    for number in range(1, len(crowded) + 1):
        screens = [phone.dial()]
        for value in lang_keys + ["3", PIN]:
            screens.append(phone.send(value))
        # Page forward until the learner's number is on screen, then choose it.
        while f"\n{number}. " not in screens[-1]:
            assert "98. " in screens[-1], screens[-1]
            screens.append(phone.send("98"))
        screens.append(phone.send(str(number)))
        for screen in screens:
            well_formed(screen)
        status = screens[-1].splitlines()
        assert status[0].startswith("CON Wanjikumu") and status[0].endswith(f" K. ({GRADES[number - 1]})")
        assert_whole_words(status[1], SCHOOL)


def test_worst_case_codes_and_upi_screens(crowded, ussd, clock, sms):
    phone = ussd()
    for value_list in (["2", PIN, "98", "8", "{otp}"], ["4", "3", "bc0", "01012010", "{otp}", "0918", "0918"]):
        screens = [phone.dial()]
        for value in value_list:
            while value == "8" and "\n8. " not in screens[-1]:  # the last learner: page until it is shown
                screens.append(phone.send("98"))
            screens.append(phone.send(value))
        for screen in screens:
            well_formed(screen)
        assert screens[-1].startswith("END ")
        clock.advance(seconds=61)
    bodies = sms.clear_bodies("+254712345678")
    assert [m.kind.value for m in sms.messages("+254712345678")] == ["otp", "upi", "otp"]
    for body in bodies:
        assert len(body) <= 160 and all(" " <= ch <= "~" for ch in body), body
    assert bodies[1] == "Elimu: the UPI of Wanjikumuthonimainaw K. is UPI007. Keep it safe."
