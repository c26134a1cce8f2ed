"""Parsing inbound SMS commands (CONTRACT: case-insensitive, Kiswahili words too, legacy forms)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.services.sms_commands import Command, CommandKind, name_key, name_keys, parse

R = CommandKind.RESULTS


@pytest.mark.parametrize(("text", "expected"), [
    ("KCSE 36611030002 Wanjiku", Command(R, exam="KCSE", number="36611030002", names=("Wanjiku",))),
    ("kcse 36611030002 wanjiku", Command(R, exam="KCSE", number="36611030002", names=("wanjiku",))),
    ("  KCSE   36611030002  Jane  Wanjiku ", Command(R, exam="KCSE", number="36611030002", names=("Jane", "Wanjiku"))),
    ("KCSE 36611030002 Wanjiku 2024", Command(R, exam="KCSE", number="36611030002", names=("Wanjiku",), year=2024)),
    ("KCSE 36611030002", Command(R, exam="KCSE", number="36611030002")),
    ("KCSE 36611030002 2023", Command(R, exam="KCSE", number="36611030002", year=2023)),
    ("36611030002KCSE", Command(R, exam="KCSE", number="36611030002")),
    ("36611030002kcpe Otieno", Command(R, exam="KCPE", number="36611030002", names=("Otieno",))),
    ("KCPE36611030002", Command(R, exam="KCPE", number="36611030002")),
    ("KCSE36611030002 Wanjiku", Command(R, exam="KCSE", number="36611030002", names=("Wanjiku",))),
    ("36611030002 KCSE Wanjiku", Command(R, exam="KCSE", number="36611030002", names=("Wanjiku",))),
    ("KCSE, 36611030002, Wanjiku.", Command(R, exam="KCSE", number="36611030002", names=("Wanjiku",))),
    ("KCSE#36611030002#Wanjiku", Command(R, exam="KCSE", number="36611030002", names=("Wanjiku",))),
    ("KPSEA A1234567 Achieng", Command(R, exam="KPSEA", number="A1234567", names=("Achieng",))),
    ("kjsea 20251234567 achieng 2025", Command(R, exam="KJSEA", number="20251234567", names=("achieng",), year=2025)),
    ("KCSE", Command(R, exam="KCSE")),
    ("03611030002KCSE", Command(R, exam="KCSE", number="03611030002")),  # the leading zero kept
    ("UPI", Command(CommandKind.UPI)),
    ("upi please", Command(CommandKind.UPI)),
    ("HELP", Command(CommandKind.HELP, "en")),
    ("msaada", Command(CommandKind.HELP, "sw")),
    ("Stop", Command(CommandKind.STOP, "en")),
    ("SITISHA", Command(CommandKind.STOP, "sw")),
    ("start", Command(CommandKind.START, "en")),
    ("ANZA", Command(CommandKind.START, "sw")),
    ("", Command(CommandKind.UNKNOWN)),
    ("hello there", Command(CommandKind.UNKNOWN)),
    ("36611030002", Command(CommandKind.UNKNOWN, number="36611030002")),
    ("36611030002 Wanjiku", Command(CommandKind.UNKNOWN, number="36611030002")),
    ("KCSEE 36611030002", Command(CommandKind.UNKNOWN)),
    ("12345 hello", Command(CommandKind.UNKNOWN)),
    ("MATOKEO KCSE 36611030002 Wanjiku", Command(R, "sw", exam="KCSE", number="36611030002", names=("Wanjiku",))),
    ("Results: KCPE 36611030002", Command(R, "en", exam="KCPE", number="36611030002")),
    ("matokeo", Command(CommandKind.HELP, "sw")),
    ("RESULTS", Command(CommandKind.HELP, "en")),
    ("matokeo msaada", Command(CommandKind.HELP, "sw")),
    ("matokeo 36611030002 Wanjiku", Command(CommandKind.UNKNOWN, "sw", number="36611030002")),
    ("matokeo tafadhali", Command(CommandKind.UNKNOWN, "sw")),
])
def test_parse(text, expected):
    assert parse(text) == expected


KCSE_WANJIKU = Command(R, exam="KCSE", number="36611030002", names=("Wanjiku",))


@pytest.mark.parametrize("text", [
    "KCSE 36611030002 Wanjiku.",
    "KCSE 36611030002 Wanjiku!",
    "KCSE 36611030002 Wanjiku?",
    "KCSE 36611030002 'Wanjiku'",
    "KCSE 36611030002 \u201cWanjiku\u201d",  # smart quotes
    "KCSE 36611030002 Wanjiku \U0001F64F",  # an emoji after the name
    "\U0001F64F KCSE 36611030002 Wanjiku",
    "KCSE 36611030002 - Wanjiku",
    "KCSE\t36611030002\nWanjiku\r\n",
    "KCSE\u00a036611030002\u00a0Wanjiku",
    "KCSE,36611030002,Wanjiku",
    "KCSE-36611030002-Wanjiku",
    "KCSE/36611030002/Wanjiku",
    "KCSE 366110/30002 Wanjiku",  # the index in pieces: its 11 digits
    "KCSE 36611030/002 Wanjiku",
    "KCSE 36611030-002 Wanjiku",
    "KCSE 36611030 002 Wanjiku",
    "KCSE 366 1103 0002 Wanjiku",
])
def test_as_phones_send_them(text):
    assert parse(text) == KCSE_WANJIKU


@pytest.mark.parametrize(("text", "expected"), [
    ("KCSE36611030002Wanjiku", Command(R, exam="KCSE", number="36611030002", names=("Wanjiku",))),
    ("KCSE 36611030002Wanjiku", Command(R, exam="KCSE", number="36611030002", names=("Wanjiku",))),
    ("KCSE 36611030002 N'Gang'a Wa-Njeri", Command(R, exam="KCSE", number="36611030002", names=("N'Gang'a", "Wa-Njeri"))),
    ("KCSE 36611030002 2024 Wanjiku", Command(R, exam="KCSE", number="36611030002", names=("Wanjiku",), year=2024)),
    ("KCSE 2024 36611030002 Wanjiku", Command(R, exam="KCSE", number="36611030002", names=("Wanjiku",), year=2024)),
    ("KCSE 36611030002 Wanjiku, 2024.", Command(R, exam="KCSE", number="36611030002", names=("Wanjiku",), year=2024)),
    ("KCSE 2024 Wanjiku", Command(R, exam="KCSE", names=("Wanjiku",), year=2024)),  # no index: the form to use
    ("KCSE 36611 2024 Wanjiku", Command(R, exam="KCSE", number="36611", names=("Wanjiku",), year=2024)),  # not 11
    ("KCSE 3661103000 Wanjiku", Command(R, exam="KCSE", number="3661103000", names=("Wanjiku",))),  # as typed
    # pieces or a run-in name that do not make 11 digits: all the digits typed, to tell their count
    ("KCSE 3661103 002 Wanjiku", Command(R, exam="KCSE", number="3661103002", names=("Wanjiku",))),
    ("KCSE 3661103/002 Wanjiku", Command(R, exam="KCSE", number="3661103002", names=("Wanjiku",))),
    ("KCSE 3661103002Wanjiku", Command(R, exam="KCSE", number="3661103002", names=("Wanjiku",))),
    ("KCSE 36611030 0002 Wanjiku", Command(R, exam="KCSE", number="366110300002", names=("Wanjiku",))),
    ("KCSE 3661103002 2024 Wanjiku", Command(R, exam="KCSE", number="3661103002", names=("Wanjiku",), year=2024)),
    ("KCSE 2024 3661103002 Wanjiku", Command(R, exam="KCSE", number="3661103002", names=("Wanjiku",), year=2024)),
    ("KCSE 3661103000X Wanjiku", Command(R, exam="KCSE", number="3661103000X", names=("Wanjiku",))),  # not digits
    ("KCSE 36611030002 -", Command(R, exam="KCSE", number="36611030002")),  # no name given
    ("KPSEA A1234/567 Achieng", Command(R, exam="KPSEA", number="A1234/567", names=("Achieng",))),
    ("Help!", Command(CommandKind.HELP, "en")),
    ("help me", Command(CommandKind.HELP, "en")),
    ("Stop!", Command(CommandKind.STOP, "en")),
    ("stop.", Command(CommandKind.STOP, "en")),
    ("'STOP'", Command(CommandKind.STOP, "en")),
    ("Sitisha!!", Command(CommandKind.STOP, "sw")),
    ("START!", Command(CommandKind.START, "en")),
    ("upi?", Command(CommandKind.UPI)),
    ("Msaada?", Command(CommandKind.HELP, "sw")),
    ("   ", Command(CommandKind.UNKNOWN)),
    ("\n\t", Command(CommandKind.UNKNOWN)),
    ("\U0001F600\U0001F600", Command(CommandKind.UNKNOWN)),
    ("x" * 1000, Command(CommandKind.UNKNOWN)),
    ("K.C.S.E 36611030002 Wanjiku", Command(CommandKind.UNKNOWN)),
    ("Matokeo ya KCSE 36611030002 Wanjiku", Command(R, "sw", exam="KCSE", number="36611030002", names=("Wanjiku",))),
    ("Results for KCSE 36611030002 Wanjiku", Command(R, "en", exam="KCSE", number="36611030002", names=("Wanjiku",))),
    ("results of kcpe 36611030002", Command(R, "en", exam="KCPE", number="36611030002")),
    ("matokeo ya", Command(CommandKind.HELP, "sw")),
    ("matokeo ya 36611030002 Wanjiku", Command(CommandKind.UNKNOWN, "sw", number="36611030002")),
])
def test_what_people_type_on_results_day(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    # a year-looking piece that would complete 11 digits: the year when the exam was sat that year
    ("KCSE 3661103 2024 Wanjiku", Command(R, exam="KCSE", number="3661103", names=("Wanjiku",), year=2024)),
    ("KCSE 366 1103 2024 Wanjiku", Command(R, exam="KCSE", number="3661103", names=("Wanjiku",), year=2024)),
    ("KCSE 2024 3661103 Wanjiku", Command(R, exam="KCSE", number="3661103", names=("Wanjiku",), year=2024)),
    ("KCSE 2024 3661103 002 Wanjiku", Command(R, exam="KCSE", number="3661103002", names=("Wanjiku",), year=2024)),
    # else the start or end of an index: no KCSE was sat in 1930 (Nyeri's centre codes start 1930)
    ("KCSE 1930 1012001 Mwangi", Command(R, exam="KCSE", number="19301012001", names=("Mwangi",))),
    ("KCSE 1930 10120 01 Mwangi", Command(R, exam="KCSE", number="19301012001", names=("Mwangi",))),
    ("KCSE 3661103 1930 Wanjiku", Command(R, exam="KCSE", number="36611031930", names=("Wanjiku",))),
    ("KCPE 3661103 2024 Otieno", Command(R, exam="KCPE", number="36611032024", names=("Otieno",))),  # KCPE ended 2023
    # a year that completes nothing is the year, as before, sat or not
    ("KCPE 2024 36611030002 Otieno", Command(R, exam="KCPE", number="36611030002", names=("Otieno",), year=2024)),
    ("KCSE 36611 1930 Wanjiku", Command(R, exam="KCSE", number="36611", names=("Wanjiku",), year=1930)),
    ("KCSE 1930 Wanjiku", Command(R, exam="KCSE", names=("Wanjiku",), year=1930)),
])
def test_a_year_looking_piece_is_read_as_a_parent_means_it(text, expected):
    """'KCSE 3661103 2024 Wanjiku' was joined into the index 36611032024; 'KCSE 1930 1012001 Mwangi',
    an index typed in two pieces, was read as the year 1930 and a 7-digit number."""
    assert parse(text) == expected


@pytest.mark.parametrize(("text", "valid"), [
    ("KCSE 36611030002 Jane", True),
    ("KCPE 03611030002 Jane", True),
    ("KCSE 3661103000X Jane", False),
    ("KCSE 12 Jane", False),
    ("KCSE 3661103000 Jane", False),  # 10 digits: no KCSE index (DOMAIN: 11)
    ("KCSE 366110300021 Jane", False),  # 12
    ("KCPE 3661103000 Jane", False),
    ("KPSEA A1234567 Jane", True),
    ("KPSEA A1 Jane", False),
    ("KCSE", False),
])
def test_the_number_must_have_the_exams_shape(text, valid):
    assert parse(text).valid_number is valid


@pytest.mark.parametrize(("text", "digits"), [
    ("KCSE 3661103000 Wanjiku", 10), ("KCPE 366110300021 Otieno", 12), ("KCSE 1 Wanjiku", 1),
    ("KCSE 36611030002 Wanjiku", 11),
    ("KCSE 3661103000X Wanjiku", None), ("KCSE Wanjiku", None), ("KCSE", None),
    ("KPSEA 2025123 Achieng", None),  # an assessment number: its length is not known (DOMAIN)
])
def test_the_digits_of_an_index_number_are_counted(text, digits):
    assert parse(text).index_digits == digits


@given(st.text(max_size=2000))
def test_parse_never_raises(text):
    assert isinstance(parse(text), Command)


def test_names_compare_without_case_accents_or_punctuation():
    assert name_key(" O'Brien ") == name_key("obrien") == "obrien"
    assert name_key("Wambüi") == "wambui"
    assert name_keys("Mary-Anne  Wanjiku") == {"maryanne", "mary", "anne", "wanjiku"}


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=40) | st.text(max_size=40))
def test_a_name_key_is_the_same_by_the_ascii_shortcut_as_by_decomposition(name):
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    assert name_key(name) == "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch)
                                     and unicodedata.category(ch) != "Lm")
