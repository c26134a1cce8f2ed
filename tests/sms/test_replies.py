"""Answers to SMS commands: the results disclosure policy, UPI, STOP/START, help, languages."""

from __future__ import annotations

import re

import fakeredis
import pytest

from registry import gsm
from registry.models import AuditEvent, MessageKind, PhoneSetting
from registry.services.sms_commands import parse
from registry.services.sms_replies import OpenGate, format_results, prefetch_results, respond
from tests.sms.support import add_guardian, add_institution, add_learner, add_result, verify
from workers.inbound import RedisGate

PHONE = "+254712345678"
OTHER = "+254722000111"


@pytest.fixture
def session(sqlite_database):
    with sqlite_database.transaction() as session:
        yield session


NEED_NAME = ("For privacy, results need one of the candidate's names: KCSE 36611030002 <name>. "
             "Verified guardians may leave it out: dial *384*1234# to verify.")
NO_MATCH = ("No KCSE results were found for 36611030002 with that name. Check the number and the name; "
            "for an earlier year, add it: KCSE 36611030002 <name> <year>")
SHORT_NAME = ("For privacy, send one of the candidate's names in full (3 letters or more): KCSE 36611030002 <name>. "
              "Initials and short names (Wa, Mo) count only beside one.")


def ask(session, text, phone=PHONE, language=None, gate=None, message_id=1, batched=False):
    """The reply to ``text``; ``batched``: through a batch's lookup, as the inbound drain asks."""
    command = parse(text)
    lookup = prefetch_results(session, [command]) if batched else None
    return respond(session, message_id=message_id, phone=phone, command=command, stored_language=language,
                   gate=gate or OpenGate(), ussd_code="*384*1234#", lookup=lookup)


def audits(session):
    return [(a.action, a.channel, a.reference, a.learner_id, a.phone) for a in session.query(AuditEvent)]


def disclosed(session):
    """The audit rows of learner data sent (a refusal's row is no disclosure)."""
    return [a for a in audits(session) if a[0] in ("results_replied", "upi_sent")]


def refusals(session):
    """The actions of the audit rows of results refused (``results_miss``, ``results_refused``)."""
    return [a[0] for a in audits(session) if a[0] in ("results_miss", "results_refused")]


# --- results: embargo, name check, guardian exemption ------------------------------------------


def test_results_with_one_of_the_candidates_names(session):
    learner = add_learner(session, add_institution(session))
    add_result(session, learner=learner)
    reply = ask(session, "KCSE 36611030002 wanjiku", message_id=41)
    assert reply.text == "KCSE 2025 36611030002: Mean grade B+ (62 pts). ENG:B+, KIS:A-, MAT:A"
    assert reply.kind is MessageKind.REPLY
    assert audits(session) == [("results_replied", "sms", "41", learner.id, PHONE)]


@pytest.mark.parametrize(("mark", "english", "kiswahili"), [
    ("X", "Mean grade X (absent).", "Wastani X (hakufanya mtihani)."),
    ("Y", "Mean grade Y (cancelled: exam irregularity; ask the school).",
     "Wastani Y (yamefutwa kwa ukiukaji wa kanuni za mtihani; uliza shule)."),
    ("W", "Mean grade W (withheld by KNEC; ask the school).", "Wastani W (yamezuiliwa na KNEC; uliza shule)."),
    ("P", "Mean grade P (pending).", "Wastani P (bado yanasubiriwa)."),
])
def test_a_knec_status_mark_in_place_of_the_grade_is_explained(session, mark, english, kiswahili):
    """KNEC prints X, Y, W or P where a candidate has no grade; alone, 'Mean grade Y' tells a parent
    nothing (Y: results cancelled for an irregularity)."""
    add_result(session, mean=mark, points=None, subjects="ENG:B;KIS:C+")
    reply = ask(session, "KCSE 36611030002 Jane")
    assert reply.text == f"KCSE 2025 36611030002: {english} ENG:B, KIS:C+"
    assert ask(session, "MATOKEO KCSE 36611030002 Jane").text == f"KCSE 2025 36611030002: {kiswahili} ENG:B, KIS:C+"
    assert gsm.is_gsm7(reply.text) and gsm.segments(reply.text) == 1


def test_a_grade_that_is_a_letter_like_a_mark_is_not_explained(session):
    add_result(session, mean="E", points=12)
    assert ask(session, "KCSE 36611030002 Jane").text.startswith("KCSE 2025 36611030002: Mean grade E (12 pts). ")


def test_a_kcpe_total_is_in_marks_not_points(session):
    add_result(session, exam="KCPE", year=2023, mean="B+", points=412, subjects="ENG:A-;KIS:B+;MAT:A")
    assert ask(session, "KCPE 36611030002 Jane").text == "KCPE 2023 36611030002: Mean grade B+ (412 marks). ENG:A-, KIS:B+, MAT:A"
    assert ask(session, "KCPE 36611030002 Jane", language="sw").text.startswith(
        "KCPE 2023 36611030002: Wastani B+ (alama 412).")


def test_kcse_points_in_kiswahili_are_pointi_not_the_marks_word(session):
    """'alama' is KCPE's marks (out of 500); KCSE's points (out of 84) are 'pointi', as Kenyan
    Kiswahili news gives them, so 'alama 62' is not read as 62 marks."""
    add_result(session)
    assert ask(session, "KCSE 36611030002 Jane", language="sw").text.startswith(
        "KCSE 2025 36611030002: Wastani B+ (pointi 62).")


def test_before_release_the_reply_says_not_yet_out(session):
    add_result(session, released=False)
    reply = ask(session, "KCSE 36611030002 Wanjiku")
    assert reply.text == "KCSE 2025 results are not yet released. Please try again after the official release."
    assert "B+" not in reply.text and audits(session) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("KCSE 36611030002", NEED_NAME),  # no name, not a guardian
    ("KCSE 36611030002 Akinyi", NO_MATCH),  # not one of the names
    ("KCSE 36611030002 Wanjiku Akinyi", NO_MATCH),  # every name given must match
    ("KCSE 36611030002 J", SHORT_NAME),  # an initial is not a name
    ("KCSE 36611030002 Jane Wambui Wanjiku Jane Wanjiku", NO_MATCH),  # no spraying many names at once
])
def test_without_a_right_name_no_grades(session, text, expected):
    add_result(session)
    assert ask(session, text).text == expected
    assert refusals(session) == ["results_refused" if expected == NEED_NAME else "results_miss"]


@pytest.mark.parametrize("name", ["Jane", "WAMBUI", "  wanjiku ", "Jane Wanjiku"])
def test_any_of_the_names_case_and_space_insensitive(session, name):
    add_result(session)
    assert "Mean grade B+" in ask(session, f"KCSE 36611030002 {name}").text


GRADES = "KCSE 2025 36611030002: Mean grade B+ (62 pts). ENG:B+, KIS:A-, MAT:A"


@pytest.mark.parametrize("text", [
    "kcse 36611030002 wanjiku",
    "  KCSE   36611030002  Wanjiku ",
    "KCSE\t36611030002\nWanjiku\r\n",
    "KCSE 36611030002 Wanjiku.",
    "KCSE 36611030002 Wanjiku!",
    "KCSE#36611030002#Wanjiku",
    "KCSE,36611030002,Wanjiku",
    "KCSE-36611030002-Wanjiku",
    "KCSE36611030002 Wanjiku",
    "KCSE 36611030002Wanjiku",
    "36611030002KCSE Wanjiku",
    "KCSE 36611030/002 Wanjiku",
    "KCSE 366110 30002 Wanjiku",
    "KCSE 36611030002 \u201cWanjiku\u201d",
    "KCSE 36611030002 Wanjiku \U0001F64F",
    "KCSE 36611030002 Jane Wambui Wanjiku",
    "KCSE 36611030002 WAMB\u00dcI",
    "KCSE 2025 36611030002 Wanjiku",
    "KCSE 36611030002 2025 Wanjiku",
    "Results: KCSE 36611030002 Wanjiku",
])
def test_results_day_messages_as_typed_get_the_grades(session, text):
    add_result(session)
    assert ask(session, text).text == GRADES


@pytest.mark.parametrize(("name", "shown"), [
    ("N'Gang'a", True), ("N\u2019Gang\u2019a", True), ("Nganga", True), ("NGANG'A", True),
    ("Wa-Njeri", True), ("Wanjeri", True), ("Njeri", True), ("Wa Njeri", True),
    ("Ng'ang'a Akinyi", False), ("Kamau", False),
])
def test_names_with_apostrophes_and_hyphens(session, name, shown):
    """Stored ``N'Gang'a`` and ``Wa-Njeri``: typed with or without the marks, or with a phone's curly quote."""
    add_result(session, name="Grace Wa-Njeri N'Gang'a")
    assert (ask(session, f"KCSE 36611030002 {name}").text == GRADES) is shown


@pytest.mark.parametrize("text", ["KCSE 36611030002 \U0001F64F", "KCSE 36611030002 -", "KCSE 36611030002."])
def test_a_request_without_a_name_is_asked_for_one(session, text):
    """An emoji or a dash where the name goes is no name (it said no results 'with that name')."""
    add_result(session)
    assert ask(session, text).text == NEED_NAME


@pytest.mark.parametrize(("name", "shown"), [
    ("J. Wanjiku", True), ("Jane W.", True), ("J W Wanjiku", True), ("J.W. Wanjiku", True),
    ("X. Wanjiku", False),  # an initial given must be one of the candidate's
    ("J", False), ("J W", False), ("J. W.", False),  # initials alone are no name
])
def test_an_initial_beside_a_name_is_checked_not_refused(session, name, shown):
    """'J. Wanjiku' was refused as if a wrong name had been given (candidate Jane Wambui Wanjiku)."""
    add_result(session)
    assert (ask(session, f"KCSE 36611030002 {name}").text == GRADES) is shown


def test_the_learners_registry_names_count_too(session):
    learner = add_learner(session, add_institution(session), first="Janet", last="Kamau")
    add_result(session, learner=learner, name="J. W. Wanjiku")
    assert "Mean grade" in ask(session, "KCSE 36611030002 kamau").text


@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
def test_an_activated_guardian_verified_for_the_learner_needs_no_name(session, batched):
    learner = add_learner(session, add_institution(session))
    add_guardian(session, PHONE, learner, active=True)
    verify(session, PHONE, learner)
    add_result(session, learner=learner)
    assert "Mean grade B+" in ask(session, "KCSE 36611030002", batched=batched).text
    assert [a[0] for a in audits(session)] == ["results_replied"]


@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
def test_an_activated_guardian_not_verified_for_the_learner_needs_a_name(session, batched):
    """Mary activated for Jane only; Brian is linked to her phone (a school's record) but not verified."""
    institution = add_institution(session)
    jane, brian = add_learner(session, institution), add_learner(session, institution, first="Brian", last="Kamau")
    add_guardian(session, PHONE, jane, brian, active=True)
    verify(session, PHONE, jane)
    add_result(session, learner=brian, index="19301012001", name="Brian Mwangi Kamau", mean="A-")
    reply = ask(session, "KCSE 19301012001", batched=batched)
    assert "A-" not in reply.text and disclosed(session) == []
    assert reply.text == NEED_NAME.replace("36611030002", "19301012001")  # with how to verify
    named = ask(session, "KCSE 19301012001 Brian", batched=batched, message_id=5)  # the name: the second factor
    assert "Mean grade A-" in named.text
    assert audits(session) == [("results_refused", "sms", "1", None, PHONE),  # no learner named in a refusal
                               ("results_replied", "sms", "5", brian.id, PHONE)]


@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
def test_a_verified_link_of_an_account_without_a_pin_still_needs_a_name(session, batched):
    learner = add_learner(session, add_institution(session))
    add_guardian(session, PHONE, learner, active=False)
    verify(session, PHONE, learner)
    add_result(session, learner=learner)
    assert ask(session, "KCSE 36611030002", batched=batched).text == NEED_NAME


def test_a_linked_but_not_activated_phone_still_needs_a_name(session):
    learner = add_learner(session, add_institution(session))
    add_guardian(session, PHONE, learner, active=False)
    add_result(session, learner=learner)
    assert "one of the candidate's names" in ask(session, "KCSE 36611030002").text


def test_an_activated_guardian_of_another_learner_needs_a_name(session):
    institution = add_institution(session)
    add_guardian(session, PHONE, add_learner(session, institution, first="Otieno"), active=True)
    add_result(session, learner=add_learner(session, institution))
    assert "one of the candidate's names" in ask(session, "KCSE 36611030002").text


def test_the_latest_released_year_answers_and_a_trailing_year_picks_one(session):
    add_result(session, year=2023, mean="C+", subjects="ENG:C+")
    add_result(session, year=2024, mean="B-", subjects="ENG:B-")
    add_result(session, year=2025, mean="A", subjects="ENG:A", released=False)
    assert ask(session, "KCSE 36611030002 Jane").text.startswith("KCSE 2024 36611030002: Mean grade B-")
    assert ask(session, "KCSE 36611030002 Jane 2023").text.startswith("KCSE 2023 36611030002: Mean grade C+")
    assert "not yet released" in ask(session, "KCSE 36611030002 Jane 2025").text


def test_unknown_index_and_malformed_number(session):
    assert ask(session, "KCSE 36611039999 Jane").text == NO_MATCH.replace("36611030002", "36611039999")
    assert ask(session, "KCSE 2024 Jane Wanjiku").text.startswith("For results send: KCSE <index no>")
    assert ask(session, "KCSE Jane").text.startswith("For results send: KCSE <index no>")
    # KPSEA and KJSEA take assessment numbers: the form says so (it said <index no>, e.g. <assessment no>)
    assert ask(session, "KPSEA 12 Jane").text == "For results send: KPSEA <assessment no> <one of the learner's names>"
    assert ask(session, "KJSEA", language="sw").text == (
        "Kwa matokeo tuma: KJSEA <nambari ya tathmini> <jina moja la mwanafunzi>")


LENGTH = "A KCSE index number has 11 digits; you sent {n}. Send: KCSE <11-digit index> <name>"
LENGTH_SW = "Nambari ya mtihani ya KCSE ina tarakimu 11; ulituma {n}. Tuma: KCSE <nambari ya tarakimu 11> <jina>"


@pytest.mark.parametrize(("text", "count"), [
    ("KCSE 3661103002 Wanjiku", 10),  # a digit dropped
    ("KCSE 366110300022 Wanjiku", 12),  # a digit added
    ("KCSE 3661103 002 Wanjiku", 10),  # in pieces
    ("KCSE 3661103002Wanjiku", 10),  # run into the name
    ("KCSE 3661103002 Wanjiku 2025", 10),
    ("KCSE 2025 3661103002 Wanjiku", 10),
    ("KCSE 3661103002", 10),  # no name either: the number is what is wrong
    ("3661103002KCSE Wanjiku", 10),
    ("KCSE 1 Wanjiku", 1),
])
def test_an_index_of_the_wrong_length_is_told_so(session, text, count):
    """It was told 'No KCSE results were found for 3661103002 with that name', sending the parent to
    re-check the name too; the real index 36611030002 is one digit away."""
    add_result(session)
    assert ask(session, text).text == LENGTH.format(n=count)
    assert ask(session, text, language="sw").text == LENGTH_SW.format(n=count)
    assert audits(session) == []


def test_the_wrong_length_reply_is_in_the_keywords_language_else_the_phones(session):
    assert ask(session, "Matokeo ya KCSE 3661103002 Wanjiku").text == LENGTH_SW.format(n=10)
    assert ask(session, "Results: KCSE 3661103002 Wanjiku", language="sw").text == LENGTH.format(n=10)
    assert ask(session, "KCPE 3661103002 Otieno").text == (
        "A KCPE index number has 11 digits; you sent 10. Send: KCPE <11-digit index> <name>")


@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
def test_the_wrong_length_reply_depends_on_the_length_alone(session, batched):
    """The same reply whether a real index is one digit away, or none is: it tells nothing."""
    add_result(session, index="36611030002")
    near = ask(session, "KCSE 3661103002 Wanjiku", batched=batched).text  # 36611030002 with one 0 dropped
    far = ask(session, "KCSE 9999999999 Wanjiku", batched=batched).text
    assert near == far == LENGTH.format(n=10)


def test_the_wrong_length_reply_takes_no_results_query_nor_the_help_slot(session):
    """A malformed request, like one without a number: answered every time, counted against no limit,
    and it leaves the phone's once-per-10-minutes help for an unknown text untouched."""
    from gateway.ratelimit import Limit

    redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    gate = RedisGate(redis, Limit("results", 1, 3600))
    for _ in range(3):
        assert ask(session, "KCSE 3661103002 Wanjiku", gate=gate).text == LENGTH.format(n=10)
    assert list(redis.scan_iter("elimu:sms:results-limit:*")) == []
    assert ask(session, "hello", gate=gate).text.startswith("Sorry, we did not understand")
    add_result(session)
    assert ask(session, "KCSE 36611030002 Wanjiku", gate=gate).text == GRADES  # the one query of the hour
    assert ask(session, "KCSE 36611030002 Wanjiku", gate=gate).text.startswith("Too many results requests")
    assert ask(session, "KCSE 3661103002 Wanjiku", gate=gate).text == LENGTH.format(n=10)


@pytest.mark.parametrize("language", ["en", "sw"])
@pytest.mark.parametrize("exam", ["KCSE", "KCPE"])
def test_the_wrong_length_reply_is_one_gsm7_segment(language, exam):
    from registry.services.sms_texts import text

    reply = text("results_index_length", language, exam=exam, digits=11, count=480)  # MAX_TEXT digits
    assert gsm.is_gsm7(reply) and gsm.segments(reply) == 1


def test_a_year_after_a_short_index_is_the_year_and_a_nyeri_index_in_pieces_is_the_index(session):
    """'KCSE 3661103 2024 Wanjiku' was looked up as 36611032024 ('No KCSE results were found for
    36611032024'); 'KCSE 1930 1012001 Mwangi' as the year 1930 and 1012001."""
    add_result(session, index="19301012001", name="Brian Mwangi Kamau")
    assert ask(session, "KCSE 3661103 2024 Wanjiku").text == LENGTH.format(n=7)
    assert ask(session, "KCSE 1930 1012001 Mwangi").text.startswith("KCSE 2025 19301012001: Mean grade B+")
    assert ask(session, "KCSE 19301012 001 2025 Mwangi").text.startswith("KCSE 2025 19301012001: Mean grade B+")


# --- no reply tells whether an index number exists ---------------------------------------------


@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
@pytest.mark.parametrize("language", ["en", "sw"])
@pytest.mark.parametrize("asked", ["{n} Wanjiku", "{n} Wanjiku 2025", "{n}", "{n} 2025"])
def test_an_unknown_number_and_a_wrong_name_get_the_same_reply(session, batched, language, asked):
    add_result(session, index="36611030002", name="Jane Wambui Kamau")  # a real index: Wanjiku is not a name
    real = ask(session, f"KCSE {asked.format(n='36611030002')}", language=language, batched=batched).text
    unknown = ask(session, f"KCSE {asked.format(n='36611039999')}", language=language, batched=batched).text
    assert real == unknown.replace("36611039999", "36611030002")
    assert disclosed(session) == [] and len(refusals(session)) == 2  # the same row for each


@pytest.mark.parametrize("language", ["en", "sw"])
@pytest.mark.parametrize(("real", "unknown"), [
    ("36611030/002", "36611039/999"), ("36611030 002", "36611039 999"), ("36611030002Akinyi", "36611039999Akinyi"),
])
def test_an_index_in_pieces_tells_no_more_than_one_typed_whole(session, language, real, unknown):
    add_result(session, index="36611030002", name="Jane Wambui Kamau")
    for asked in ("KCSE {n} Akinyi", "KCSE {n} Akinyi 2025", "KCSE 2025 {n} Akinyi"):
        assert ask(session, asked.format(n=real), language=language).text == ask(
            session, asked.format(n=unknown), language=language).text.replace("36611039999", "36611030002")
    assert disclosed(session) == []


@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
@pytest.mark.parametrize("asked", ["{n} Jane", "{n} Akinyi", "{n}", "{n} Jane 2025", "{n} Akinyi 2025"])
def test_not_yet_released_is_said_of_the_series_whatever_the_number(session, batched, asked):
    add_result(session, year=2024, index="36611030002")
    add_result(session, year=2025, index="36611030002", released=False)
    add_result(session, year=2025, index="36611030003", released=False, name="Peter Otieno")
    for number in ("36611030003", "36611039999"):  # only in the unreleased series; unknown
        reply = ask(session, f"KCSE {asked.format(n=number)}", batched=batched)
        assert reply.text == ("KCSE 2025 results are not yet released. "
                              "Please try again after the official release."), number
    assert disclosed(session) == []


def test_a_right_name_still_gets_the_latest_released_year_while_another_is_not_out(session):
    add_result(session, year=2024, index="36611030002", mean="B-", subjects="ENG:B-")
    add_result(session, year=2025, index="36611030003", released=False)
    assert ask(session, "KCSE 36611030002 Jane").text.startswith("KCSE 2024 36611030002: Mean grade B-")


def test_assessment_numbers_for_kpsea(session):
    add_result(session, exam="KPSEA", year=2024, index="A1234567", name="Achieng Atieno", mean="ME",
               points=None, subjects="ENG:ME2;MAT:EE1")
    assert ask(session, "kpsea A1234567 achieng").text == "KPSEA 2024 A1234567: Mean level ME. ENG:ME2, MAT:EE1"


def test_results_queries_are_limited_per_phone(session):
    add_result(session)

    class Closed(OpenGate):
        def results_allowed(self, phone):
            return False

    reply = ask(session, "KCSE 36611030002 Jane", gate=Closed())
    assert reply.text.startswith("Too many results requests") and audits(session) == []


# --- the worst case fits two GSM-7 segments, every sign intact ---------------------------------

WORST_KCSE = ";".join(f"{code}:{grade}" for code, grade in zip(
    ["ENGLISH1", "KISWAHIL", "MATHEMAT", "BIOLOGY1", "CHEMISTR", "PHYSICS1", "HISTORY1", "GEOGRAPH", "BUSINESS"],
    ["A-", "B+", "B-", "C+", "C-", "D+", "D-", "A-", "B+"], strict=True))


@pytest.mark.parametrize("language", ["en", "sw"])
@pytest.mark.parametrize(("exam", "mean", "points", "subjects"), [
    ("KCSE", "B+", 84, WORST_KCSE),
    ("KCPE", "B+", 500, ";".join(f"SUBJECT{i}:100 B+" for i in range(1, 8))),
    ("KJSEA", "EE1", 72, ";".join(f"SUBJECT{i}:EE1" for i in range(1, 10))),
])
def test_the_worst_case_reply_fits_two_segments_with_every_sign(session, language, exam, mean, points, subjects):
    result = add_result(session, exam=exam, index="366110300021234", mean=mean, points=points, subjects=subjects)
    reply = format_results(result, language)
    assert gsm.is_gsm7(reply) and gsm.segments(reply) <= 2 and gsm.septets(reply) <= 306
    for item in subjects.split(";"):
        assert item in reply  # code and grade exactly as imported
    assert reply.count("+") == subjects.count("+") + mean.count("+")
    assert reply.count("-") == subjects.count("-") + mean.count("-")
    assert "..." not in reply


def test_an_implausible_subject_list_is_cut_visibly_within_two_segments(session):
    subjects = ";".join(f"SUBJEC{i:02d}:B+" for i in range(40))
    reply = format_results(add_result(session, subjects=subjects), "en")
    assert gsm.segments(reply) <= 2 and reply.endswith("...")
    assert all(re.fullmatch(r"SUBJEC\d\d:B\+", item) for item in reply.split(". ", 1)[1][:-4].split())


# --- UPI, STOP/START, help, languages -----------------------------------------------------------


def test_upi_only_for_an_activated_account(session):
    learner = add_learner(session, add_institution(session), upi="ABC234")
    add_guardian(session, PHONE, learner, active=False)
    assert ask(session, "UPI").text == "UPIs are sent only to activated accounts. Dial *384*1234# to activate yours."
    assert audits(session) == []


def test_upi_lists_the_verified_learners_and_is_audited(session):
    institution = add_institution(session)
    jane = add_learner(session, institution, upi="ABC234")
    otieno = add_learner(session, institution, first="Otieno", last="Kamau", upi="XYZ789")
    add_guardian(session, PHONE, jane, otieno, active=True)
    verify(session, PHONE, jane, otieno)
    reply = ask(session, "upi", message_id=9)
    assert reply.text == "UPI: Jane W. ABC234; Otieno K. XYZ789"
    assert reply.kind is MessageKind.UPI
    assert sorted(audits(session)) == sorted([("upi_sent", "sms", "9", jane.id, PHONE),
                                              ("upi_sent", "sms", "9", otieno.id, PHONE)])


def test_upi_leaves_out_the_learners_the_phone_is_not_verified_for(session):
    """Mary activated for Jane only: Peter and Brian are linked to her phone but not verified."""
    institution = add_institution(session)
    jane = add_learner(session, institution, upi="ZQ6NFN")
    peter = add_learner(session, institution, first="Peter", last="Kamau", upi="ZKA8MQ")
    brian = add_learner(session, institution, first="Brian", last="Kamau", upi="9EP5BA")
    add_guardian(session, PHONE, jane, peter, brian, active=True)
    verify(session, PHONE, jane)
    reply = ask(session, "UPI", message_id=3)
    assert reply.text == "UPI: Jane W. ZQ6NFN"
    assert audits(session) == [("upi_sent", "sms", "3", jane.id, PHONE)]


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "UPIs are sent only for learners verified on this number. Dial *384*1234# and choose 1 to add yours."),
    ("sw", "UPI hutumwa tu kwa wanafunzi waliothibitishwa kwa nambari hii. Piga *384*1234# kisha uchague 1 kuwaongeza wako."),
])
def test_upi_to_an_account_verified_for_none_of_its_links_says_how_to_verify(session, language, expected):
    learner = add_learner(session, add_institution(session), upi="ABC234")
    add_guardian(session, PHONE, learner, active=True)
    assert ask(session, "UPI", language=language).text == expected
    assert audits(session) == []


def test_stop_and_start_set_the_opt_out(session):
    assert ask(session, "STOP").text.startswith("You will no longer get announcements")
    assert session.get(PhoneSetting, PHONE).opted_out is True
    # the Kiswahili reply names the Kiswahili keyword that undoes it (ANZA), not the English START
    assert ask(session, "sitisha").text == "Hutapokea tena matangazo ya Elimu. Tuma ANZA kuyapokea tena."
    assert ask(session, "START").text.startswith("You will get Elimu announcements again")
    session.expire_all()
    assert session.get(PhoneSetting, PHONE).opted_out is False


@pytest.mark.parametrize(("stop", "start", "stopped"), [
    ("Stop!", "START!", "You will no longer get announcements"),
    ("stop.", "start.", "You will no longer get announcements"),
    ("'STOP'", "Start please", "You will no longer get announcements"),
    ("Sitisha!", "Anza!", "Hutapokea tena matangazo"),
])
def test_stop_and_start_with_punctuation_still_count(session, stop, start, stopped):
    """'Stop!' was an unknown text: at most a help reply, and the phone kept getting announcements."""
    assert ask(session, stop).text.startswith(stopped)
    assert session.get(PhoneSetting, PHONE).opted_out is True
    ask(session, start)
    session.expire_all()
    assert session.get(PhoneSetting, PHONE).opted_out is False


def test_stop_ends_the_phones_queued_announcements_and_nothing_else(session):
    from registry.models import MessageStatus, OutboundMessage
    from registry.outbox import OPTED_OUT, queue_many, queue_sms

    queue_many(session, [(PHONE, MessageKind.ANNOUNCEMENT, "Term dates", None),
                         (OTHER, MessageKind.ANNOUNCEMENT, "Term dates", None)], announcement_id=1)
    in_flight = queue_sms(session, PHONE, MessageKind.ANNOUNCEMENT, "Fees", announcement_id=2)
    in_flight.status = MessageStatus.SUBMITTED  # a worker holds it: on its way
    for kind in (MessageKind.OTP, MessageKind.NOTICE, MessageKind.REPLY, MessageKind.UPI):
        queue_sms(session, PHONE, kind, f"a {kind}")
    session.flush()
    ask(session, "STOP")
    session.expire_all()
    rows = {(m.recipient, m.kind, m.body): (m.status, m.failure_reason) for m in session.query(OutboundMessage)}
    assert rows.pop((PHONE, MessageKind.ANNOUNCEMENT, "Term dates")) == (MessageStatus.FAILED, OPTED_OUT)
    assert rows.pop((PHONE, MessageKind.ANNOUNCEMENT, "Fees")) == (MessageStatus.SUBMITTED, None)
    assert {status for status, _ in rows.values()} == {MessageStatus.QUEUED}  # the other phone's, and the rest


def test_replies_follow_the_keywords_language_else_the_phones(session):
    assert ask(session, "MSAADA").text.startswith("Elimu: kwa matokeo tuma KCSE")
    assert ask(session, "HELP", language="sw").text.startswith("Elimu: for results send KCSE")
    assert ask(session, "KCSE 36611039999 Jane", language="sw").text.startswith("Hakuna matokeo ya KCSE")
    assert ask(session, "habari", language="sw").text.startswith("Samahani")


@pytest.mark.parametrize(("word", "language", "index", "assessment"), [
    ("HELP", "en", "KCSE <index no>", "KPSEA and KJSEA with the <assessment no>"),
    ("MSAADA", "sw", "KCSE <nambari ya mtihani>", "KPSEA na KJSEA kwa <nambari ya tathmini>"),
])
def test_the_help_gives_kpsea_and_kjsea_their_assessment_number_within_two_segments(
        session, word, language, index, assessment):
    """It showed <index no> for KPSEA and KJSEA too, which take assessment numbers."""
    from registry.services.sms_replies import MAX_SEGMENTS
    from registry.services.sms_texts import text

    reply = ask(session, word).text
    assert index in reply and assessment in reply
    longest = text("help", language, ussd="*384*1234*99#")  # a longer service code
    assert gsm.is_gsm7(longest) and gsm.segments(longest) <= MAX_SEGMENTS


def test_an_unknown_text_gets_help_at_most_once_per_ten_minutes(session):
    gate = RedisGate(fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    assert ask(session, "hello", gate=gate).text.startswith("Sorry, we did not understand")
    assert ask(session, "hello again", gate=gate) is None
    assert ask(session, "hi", phone=OTHER, gate=gate) is not None
    assert ask(session, "HELP", gate=gate) is not None  # asking for help always answers


def test_a_number_without_the_exam_gets_the_form_to_use_under_the_same_ten_minute_gate(session):
    gate = RedisGate(fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    reply = ask(session, "36611030002 Jane", gate=gate)
    assert reply.text == ("For results, start with the exam: KCSE 36611030002 <one of the candidate's names> "
                          "(or KCPE, KPSEA, KJSEA instead of KCSE).")
    assert ask(session, "36611030002 Jane", gate=gate) is None
    assert ask(session, "matokeo 36611030002", phone=OTHER, gate=gate).text.startswith(
        "Kwa matokeo, anza na mtihani: KCSE 36611030002")


def test_results_after_matokeo_are_answered_in_kiswahili(session):
    add_result(session)
    assert ask(session, "MATOKEO KCSE 36611030002 Jane").text.startswith("KCSE 2025 36611030002: Wastani")
    assert ask(session, "Results KCSE 36611030002 Jane", language="sw").text.startswith(
        "KCSE 2025 36611030002: Mean grade")
    assert ask(session, "matokeo").text.startswith("Elimu: kwa matokeo tuma KCSE")
    assert ask(session, "Matokeo ya KCSE 36611030002 Jane").text.startswith("KCSE 2025 36611030002: Wastani")


@pytest.mark.parametrize("text", ["HELP", "MSAADA", "STOP", "SITISHA", "START", "ANZA", "UPI", "xyz",
                                  "366110300029999 Jane", "MATOKEO", "KCSE 36611030002 Jane", "KCSE Jane", "KCSE 36611030002", "KCSE 36611039999 Jane",
                                  "KCSE 3661103000 Jane", "KCPE " + "1" * 400])
@pytest.mark.parametrize("language", ["en", "sw"])
def test_every_reply_is_gsm7_within_two_segments(session, text, language):
    add_result(session)
    reply = ask(session, text, language=language)
    assert gsm.is_gsm7(reply.text) and gsm.segments(reply.text) <= 2


# --- the batched lookups the inbound workers use ------------------------------------------------


def test_the_batch_lookup_picks_exactly_as_find_result(database):
    from registry.services.results import find_result
    from registry.services.sms_replies import prefetch_results

    with database.transaction() as session:
        _batch_lookup_matches_find_result(session, find_result, prefetch_results)


def _batch_lookup_matches_find_result(session, find_result, prefetch_results):

    one, two, three = "36611030001", "36611030002", "36611030003"
    add_result(session, year=2023, index=one, mean="C")
    add_result(session, year=2024, index=one, mean="B", released=False)
    add_result(session, year=2024, index=two, mean="A", released=False)
    add_result(session, exam="KCPE", year=2023, index=one, mean="D")
    cases = [("KCSE", one, None), ("KCSE", one, 2024), ("KCSE", one, 2022),
             ("KCSE", two, None), ("KCPE", one, None), ("KCSE", three, None)]
    lookup = prefetch_results(session, [parse(f"{e} {n}") for e, n, _ in cases])
    for exam, number, year in cases:
        assert _seen(lookup(exam, number, year)) == _seen(find_result(session, exam, number, year)), (exam, number, year)


@pytest.mark.parametrize(("text", "shown"), [
    ("KCSE 36611030002 wanjiku", True),  # the candidate's name as imported
    ("KCSE 36611030002 kamau", True),  # the registry learner's name
    ("KCSE 36611030002 otieno", False),
])
def test_the_batch_lookup_applies_the_same_name_rules(session, text, shown):
    from registry.services.sms_replies import prefetch_results

    learner = add_learner(session, add_institution(session), first="Janet", last="Kamau")
    add_result(session, learner=learner, name="J. W. Wanjiku")
    command = parse(text)
    reply = respond(session, message_id=7, phone=PHONE, command=command, stored_language=None, gate=OpenGate(),
                    ussd_code="*384*1234#", lookup=prefetch_results(session, [command]))
    assert ("Mean grade B+" in reply.text) is shown
    assert [a[0] for a in audits(session)] == ["results_replied" if shown else "results_miss"]


def test_a_batch_reads_the_verified_phones_once_not_per_message(session):
    """The drain's rule: nameless queries of a whole batch make one query for every phone's links."""
    from sqlalchemy import event

    institution = add_institution(session)
    phones = [f"+2547120000{i:02d}" for i in range(10)]
    for i, phone in enumerate(phones):
        learner = add_learner(session, institution, first=f"Child{i}")
        add_guardian(session, phone, learner, active=True)
        if i % 2:
            verify(session, phone, learner)
        add_result(session, learner=learner, index=f"366110300{i:02d}")
    commands = [parse(f"KCSE 366110300{i:02d}") for i in range(10)]
    lookup = prefetch_results(session, commands)
    statements = []
    listen = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(session.get_bind(), "before_cursor_execute", listen)
    try:
        replies = [respond(session, message_id=i, phone=phone, command=command, stored_language=None,
                           gate=OpenGate(), ussd_code="*384*1234#", lookup=lookup)
                   for i, (phone, command) in enumerate(zip(phones, commands, strict=True))]
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", listen)
    assert [("Mean grade" in r.text) for r in replies] == [bool(i % 2) for i in range(10)]
    assert len([s for s in statements if "guardian_links" in s]) == 1
    assert len(statements) <= 3  # the links, the series not yet out (for the refusals), the audit rows


@pytest.mark.parametrize("language", ["en", "sw"])
@pytest.mark.parametrize("key", ["results_no_match", "results_no_match_latest", "results_need_name", "upi_unverified"])
def test_the_privacy_texts_fit_one_segment_and_two_with_the_longest_number(key, language):
    from registry.services.sms_texts import text

    values = {"exam": "KPSEA", "year": " 2025", "number": "36611030002", "ussd": "*384*1234#"}
    reply = text(key, language, **values)
    assert gsm.is_gsm7(reply) and gsm.segments(reply) == 1
    longest = text(key, language, **(values | {"number": "A" * 32, "ussd": "*384*1234*99#"}))
    assert gsm.segments(longest) <= 2


def _seen(result):
    """What a reply shows of a result (an ORM row or a batch's plain one)."""
    if result is None:
        return None
    return (result.series.exam, result.series.year, result.series.released, result.index_number, result.learner_id,
            result.candidate_name, result.mean_grade, result.points, result.subjects)


@pytest.mark.parametrize("kept", [False, True], ids=["pipeline", "thread link"])
def test_the_redis_gate_books_a_whole_batch(kept):
    """The same bookings through a redis-py pipeline and on the thread's kept connection (raw replies)."""
    from collections import Counter

    from gateway.ratelimit import Limit
    from gateway.redis_link import ThreadLink

    redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    link = ThreadLink(redis) if kept else None
    gate = RedisGate(redis, Limit("results", 2, 3600), link=link)
    gate.prepare_inbound(Counter({PHONE: 2}))
    assert [gate.inbound_allowed(PHONE) for _ in range(2)] == [True, True]
    gate.prepare(results=Counter({PHONE: 3, OTHER: 1}), unknown=[PHONE, PHONE])
    assert [gate.results_allowed(PHONE) for _ in range(3)] == [True, True, False]
    assert gate.results_allowed(OTHER) is True
    assert [gate.first_unknown_reply(PHONE), gate.first_unknown_reply(PHONE)] == [True, False]
    later = RedisGate(gate.redis, Limit("results", 2, 3600), link=link)  # the next batch, same hour
    assert later.results_allowed(OTHER) is True and later.results_allowed(OTHER) is False
    assert later.first_unknown_reply(PHONE) is False
    assert 0 < redis.ttl(next(iter(redis.scan_iter("elimu:sms:results-limit:*")))) <= 3601


@pytest.mark.parametrize("kept", [False, True], ids=["pipeline", "thread link"])
def test_a_gate_takes_back_what_a_failed_batch_booked(kept):
    """Counts and reply slots of a batch whose transaction failed are undone, so its redo counts once."""
    from collections import Counter

    from gateway.ratelimit import Limit
    from gateway.redis_link import ThreadLink

    redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    link = ThreadLink(redis) if kept else None

    def book(gate):
        gate.prepare_inbound(Counter({PHONE: 3}))
        gate.prepare(results=Counter({PHONE: 2}), unknown=[OTHER])
        return ([gate.inbound_allowed(PHONE) for _ in range(3)], [gate.results_allowed(PHONE) for _ in range(2)],
                gate.first_unknown_reply(OTHER), gate.first_too_many_reply(PHONE))

    limits = {"results_limit": Limit("results", 2, 3600), "inbound_limit": Limit("inbound", 3, 60), "link": link}
    failed = RedisGate(redis, **limits)
    assert book(failed) == ([True] * 3, [True] * 2, True, True)
    failed.take_back()
    assert book(RedisGate(redis, **limits)) == ([True] * 3, [True] * 2, True, True)  # the redo, as if first
    assert all(redis.ttl(key) > 0 for key in redis.scan_iter())
