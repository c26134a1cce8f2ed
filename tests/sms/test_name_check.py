"""The name check of results by SMS: which names pass as the second factor beside the index number,
which are refused and how, for Kenyan name forms. The rest of the reply policy is in ``test_replies.py``."""

from __future__ import annotations

import pytest

from registry import gsm
from registry.services.sms_texts import text
from tests.sms.support import add_institution, add_learner, add_result
from tests.sms.test_replies import NEED_NAME, NO_MATCH, SHORT_NAME, ask, audits


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


# --- a name as people type it ----------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "KCSE 36611030002 WANJIKU",  # another case
    "kcse 36611030002 wAnJiKu",
    "KCSE  36611030002  Jane  Wanjiku",  # double spaces
    "KCSE 36611030002 Wanjiku.",  # a trailing full stop, a comma
    "KCSE 36611030002 Wanjiku,",
    "KCSE 36611030002 Jane, Wanjiku.",
    "KCSE 36611030002 Name: Wanjiku",  # a label before the name
    "KCSE 36611030002 name:Wanjiku",
    "KCSE 36611030002 NAME - Wanjiku",
    "KCSE 36611030002 Names: Jane Wanjiku",
    "MATOKEO KCSE 36611030002 Jina: Wanjiku",
    "KCSE 36611030002 Majina: Wanjiku Jane",
    "KCSE 36611030002 Wanjiku Jane",  # two names the other way round
    "KCSE 36611030002 Wambui-Jane",
])
def test_a_right_name_as_people_type_it_gets_the_grades(session, text):
    add_result(session, name="Jane Wambui Wanjiku")
    assert ask(session, text).text.replace("Wastani", "Mean grade").replace("pointi 62", "62 pts") == GRADES


def test_a_label_word_is_only_skipped_before_the_name_not_taken_for_one(session):
    """'Name' is skipped only as a label ('Name:'); a candidate's name is never dropped for it."""
    add_result(session, name="Jane Wambui Wanjiku")
    assert ask(session, "KCSE 36611030002 Name").text == NO_MATCH
    assert ask(session, "KCSE 36611030002 Name:").text == NEED_NAME


# index 36611030002: Brian Otieno Ouma sat KCSE 2024 there, Jane Wambui Wanjiku 2025 (centre + serial reused)
NO_MATCH_IN = ("No KCSE {year} results were found for 36611030002 with that name. Check the number and send one "
               "of the candidate's names.")
OTHER_YEAR = [
    ("KCSE 36611030002 Otieno", NO_MATCH),  # the latest year answers: Jane's; Otieno's name is no key to it
    ("KCSE 36611030002 Otieno Jane", NO_MATCH),  # one name of each: neither candidate's
    ("KCSE 36611030002 Jane Otieno 2024", NO_MATCH_IN.format(year=2024)),
    ("KCSE 36611030002 Jane 2024", NO_MATCH_IN.format(year=2024)),
    ("KCSE 36611030002 Otieno 2025", NO_MATCH_IN.format(year=2025)),
    ("KCSE 36611030002 Otieno 2024", "KCSE 2024 36611030002: Mean grade C+ (62 pts). ENG:C+"),
    ("KCSE 36611030002 Jane", GRADES),
    ("KCSE 36611030002 Jane 2025", GRADES),
]


@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
@pytest.mark.parametrize(("text", "expected"), OTHER_YEAR, ids=[t for t, _ in OTHER_YEAR])
def test_a_name_of_another_years_candidate_at_the_index_gets_no_grades(session, batched, text, expected):
    """Index numbers are reused yearly: a name must be the candidate's of the year that answers,
    never open another year's (nor pass as a mix of the two candidates' names)."""
    add_result(session, year=2024, name="Brian Otieno Ouma", mean="C+", subjects="ENG:C+")
    add_result(session, year=2025, name="Jane Wambui Wanjiku")
    assert ask(session, text, batched=batched).text == expected
    assert len(audits(session)) == expected.startswith("KCSE")
