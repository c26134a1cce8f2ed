"""The name check of results by SMS: which names pass as the second factor beside the index number,
which are refused and how, for Kenyan name forms. The rest of the reply policy is in ``test_replies.py``."""

from __future__ import annotations

import pytest

from registry import gsm
from registry.services.sms_texts import text
from tests.sms.support import add_institution, add_learner, add_result
from tests.sms.test_replies import NO_MATCH, SHORT_NAME, ask, audits


@pytest.fixture
def session(sqlite_database):
    with sqlite_database.transaction() as session:
        yield session


GRADES = "KCSE 2025 36611030002: Mean grade B+ (62 pts). ENG:B+, KIS:A-, MAT:A"
SHORT = SHORT_NAME


# (candidate as imported, name typed, the reply: GRADES, SHORT or NO_MATCH)
NAMES = [
    ("Grace Wanjiku Wa-Kamau", "Wanjiku", GRADES),
    ("Grace Wanjiku Wa-Kamau", "Wa-Kamau", GRADES),
    ("Grace Wanjiku Wa-Kamau", "Wakamau", GRADES),
    ("Grace Wanjiku Wa-Kamau", "Kamau", GRADES),
    ("Grace Wanjiku Wa-Kamau", "Wa", SHORT),  # a two-letter piece alone: a guess too easy to make
    ("Grace Wanjiku Wa-Kamau", "wa.", SHORT),
    ("Grace Wanjiku Wa-Kamau", "Wa Kamau", GRADES),  # beside a full name it counts
    ("Grace Wanjiku Wa-Kamau", "Kamau Wa", GRADES),
    ("Grace Wanjiku Wa-Kamau", "Kamau-Wa", GRADES),  # the pieces the other way round, dashed
    ("Grace Wanjiku Wa-Kamau", "Wa Wanjiku", GRADES),
    ("Grace Wanjiku Wa-Kamau", "Wa Otieno", NO_MATCH),
    ("Grace Wanjiku Wa-Kamau", "Ka", SHORT),
    ("Peter Ng'ang'a Otieno", "Ng'ang'a", GRADES),
    ("Peter Ng'ang'a Otieno", "NGANGA", GRADES),
    ("Peter Ng'ang'a Otieno", "Ng", SHORT),  # never split at an apostrophe: no name, and short
    ("Peter Ng'ang'a Otieno", "ang'a", NO_MATCH),
    ("Peter Ng'ang'a Otieno", "Otieno", GRADES),
    ("Peter Ng'ang'a Otieno", "O", SHORT),  # an initial alone
    ("Peter Ng'ang'a Otieno", "O. Otieno", GRADES),
    ("Peter Ng'ang'a Otieno", "P O", SHORT),
    ("Mercy Akinyi Achieng", "akinyi", GRADES),
    ("Mercy Akinyi Achieng", "Ak", SHORT),
    ("Mercy Akinyi Achieng", "Aki", NO_MATCH),  # three letters counts alone, but must be a whole name
    ("Mohamed Abdi Ali", "Mohamed", GRADES),
    ("Mohamed Abdi Ali", "Abdi", GRADES),
    ("Mohamed Abdi Ali", "Ali", GRADES),  # three letters: a name of its own
    ("Mohamed Abdi Ali", "Mo", SHORT),
    ("Mohamed Abdi Ali", "Mo Ali", NO_MATCH),  # 'Mo' is no name of Mohamed's
    ("Mo Abdi Hassan", "Mo", SHORT),  # even where 'Mo' is one of them
    ("Mo Abdi Hassan", "Mo Abdi", GRADES),
    ("Sean O'Brien", "O'Brien", GRADES),
    ("Sean O'Brien", "OBRIEN", GRADES),
    ("Sean O'Brien", "Brien", NO_MATCH),
    ("Sean O'Brien", "O", SHORT),
    ("Sean O'Brien", "O. Sean", GRADES),
    ("Li Na", "Li", SHORT),
    ("Li Na", "Li Na", GRADES),  # the candidate's whole name, however short
    ("Li Na", "Na Li", GRADES),
    ("Li Na", "Li Wu", SHORT),
]


@pytest.mark.parametrize(("candidate", "typed", "expected"), NAMES, ids=[f"{c}|{t}" for c, t, _ in NAMES])
def test_a_name_counts_alone_from_three_letters(session, candidate, typed, expected):
    """'Wa' of 'Wa-Kamau', 'Mo' and single letters passed as the name: a guess of two letters
    showed the grades of every Wa-Kamau and Wa-Njeri at an index. A name now counts alone from three
    letters; a shorter piece or an initial only beside one (or as the candidate's whole name), and
    a text of short names only is told what to send."""
    add_result(session, name=candidate)
    assert ask(session, f"KCSE 36611030002 {typed}").text == expected
    assert len(audits(session)) == (expected == GRADES)


def test_the_short_name_reply_is_the_same_for_an_unknown_number(session):
    """Told from the names typed alone: it must not tell that an index number is real."""
    add_result(session, name="Grace Wanjiku Wa-Kamau")
    assert ask(session, "KCSE 36611039999 Wa").text == SHORT.replace("36611030002", "36611039999")


def test_a_short_piece_of_the_registry_learners_name_counts_only_beside_a_full_one(session):
    learner = add_learner(session, add_institution(session), first="Amina", last="Wa-Kamau")
    add_result(session, learner=learner, name="A. Hassan")
    assert ask(session, "KCSE 36611030002 Wa").text == SHORT
    assert ask(session, "KCSE 36611030002 Wa Amina").text == GRADES


@pytest.mark.parametrize("language", ["en", "sw"])
def test_the_short_name_reply_fits_one_segment_and_two_with_the_longest_number(language):
    values = {"exam": "KPSEA", "number": "36611030002", "letters": 3}
    reply = text("results_name_short", language, **values)
    assert gsm.is_gsm7(reply) and gsm.segments(reply) == 1
    assert gsm.segments(text("results_name_short", language, **(values | {"number": "A" * 32}))) <= 2
