"""The name check of results by SMS: which names pass as the second factor beside the index number,
which are refused and how, for Kenyan name forms. The rest of the reply policy is in ``test_replies.py``."""

from __future__ import annotations

import pytest

from registry import gsm
from registry.services.sms_texts import text
from tests.sms.support import add_institution, add_learner, add_result
from tests.sms.test_contract_sms import texts  # noqa: F401 - the end-to-end texting fixture
from tests.sms.test_replies import NEED_NAME, NO_MATCH, OTHER, PHONE, SHORT_NAME, ask, audits


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
    assert [a[0] for a in audits(session)] == ["results_replied" if expected == GRADES else "results_miss"]


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
    assert [a[0] for a in audits(session)] == ["results_replied" if expected.startswith("KCSE") else "results_miss"]


# --- wrong names: audited, and limited per phone ---------------------------------------------------

LIMITED = ("Too many results requests with a name that did not match from this number. Please try again "
           "tomorrow, or dial *384*1234# to verify as the learner's guardian.")


def _misses_and_then(session, phone=PHONE, batched=False):
    """Ten misses from ``phone`` (wrong names and numbers nobody holds, alike), then a right name."""
    wrong = [f"KCSE 36611030002 {name}" for name in ("Akinyi", "Otieno", "Mohamed", "Abdi", "Kamau")]
    unknown = [f"KCSE 3661109{n:04d} Wanjiku" for n in range(5)]
    replies = [ask(session, t, phone=phone, message_id=i, batched=batched).text
               for i, t in enumerate([*wrong, *unknown], 1)]
    return replies, ask(session, "KCSE 36611030002 Wanjiku", phone=phone, message_id=11, batched=batched).text


@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
def test_ten_misses_in_a_day_stop_a_phones_name_checks(session, batched):
    """A phone could try a name at an index ten times an hour, every hour (the results queries
    limit), and nothing was audited of it: 240 guesses a day, most of a class's common names. Now
    each miss is an audit row (no learner, no name typed), and after ten in 24 hours the phone's
    names are not checked (the right one neither) and it is told to try tomorrow."""
    add_result(session, name="Jane Wambui Wanjiku")
    replies, after = _misses_and_then(session, batched=batched)
    assert "Mean grade" not in "".join(replies) and LIMITED not in replies
    assert after == LIMITED
    assert ask(session, "KCSE 36611039999 Akinyi", message_id=12, batched=batched).text == LIMITED  # any number
    assert ask(session, "KCSE 36611030002 Wanjiku", phone=OTHER, message_id=13, batched=batched).text == GRADES
    trail = audits(session)
    assert [a[0] for a in trail] == ["results_miss"] * 10 + ["results_refused"] * 2 + ["results_replied"]
    assert all(learner is None for _, _, _, learner, _ in trail[:12])
    assert [a[2] for a in trail[:12]] == [str(i) for i in range(1, 13)]  # each with its inbound message


def test_the_limit_reply_is_one_gsm7_segment_in_either_language(session):
    add_result(session)
    _misses_and_then(session)
    kiswahili = ask(session, "MATOKEO KCSE 36611030002 Wanjiku").text
    assert kiswahili == ("Maombi mengi mno ya matokeo kwa jina lisilolingana kutoka nambari hii. Tafadhali jaribu "
                         "tena kesho, au piga *384*1234# kuthibitishwa kama mzazi wake.")
    for reply in (LIMITED, kiswahili, text("results_misses_limited", "sw", ussd="*384*1234*99#")):
        assert gsm.is_gsm7(reply) and gsm.segments(reply) == 1


def test_misses_a_day_old_no_longer_count(session):
    from datetime import timedelta

    from registry.models import AuditEvent, utcnow

    add_result(session)
    _misses_and_then(session)
    for event in session.query(AuditEvent):
        event.at = utcnow() - timedelta(days=1, minutes=1)
    session.flush()
    assert ask(session, "KCSE 36611030002 Wanjiku").text == GRADES


def test_right_names_and_requests_without_a_name_are_no_misses(session):
    add_result(session)
    for i in range(12):
        assert ask(session, "KCSE 36611030002 Wanjiku", message_id=i).text == GRADES
        assert ask(session, "KCSE 36611030002", message_id=100 + i).text == NEED_NAME
    assert ask(session, "KCSE 36611030002 Jane").text == GRADES
    assert "results_miss" not in [a[0] for a in audits(session)]


@pytest.mark.parametrize("batched", [False, True], ids=["one", "batch"])
def test_a_verified_guardian_over_the_limit_still_gets_its_learners_results(session, batched):
    from tests.sms.support import add_guardian, verify

    learner = add_learner(session, add_institution(session))
    add_guardian(session, PHONE, learner, active=True)
    verify(session, PHONE, learner)
    add_result(session, learner=learner, name="Jane Wambui Wanjiku")
    add_result(session, index="36611030005", name="Peter Otieno")  # another's: the name is not checked
    for i in range(10):
        assert ask(session, f"KCSE 36611030005 Achieng{chr(97 + i)}", batched=batched).text == NO_MATCH.replace(
            "36611030002", "36611030005")
    assert ask(session, "KCSE 36611030002 Wanjiku", batched=batched).text == GRADES  # verified: passes
    assert ask(session, "KCSE 36611030002", batched=batched).text == GRADES
    assert ask(session, "KCSE 36611030002 Akinyi", batched=batched).text == GRADES
    assert ask(session, "KCSE 36611030005 Otieno", batched=batched).text == LIMITED


def test_a_batch_counts_its_own_misses_and_reads_the_trail_once(database):
    """The drain writes a batch's audit rows at its end: misses earlier in the same batch count all
    the same, and the senders' misses are one query for the whole batch (PostgreSQL: one array)."""
    with database.transaction() as session:
        _a_batch_of_misses(session)


def _a_batch_of_misses(session):
    from sqlalchemy import event

    from registry.services.audit import batched_disclosures
    from registry.services.sms_commands import parse
    from registry.services.sms_replies import OpenGate, prefetch_results, respond

    add_result(session)
    ask(session, "KCSE 36611030002 Kamau", message_id=99)  # one miss already in the trail
    sent = [(PHONE, f"KCSE 36611030002 Otieno{chr(97 + i)}") for i in range(10)]
    sent += [(OTHER, "KCSE 36611030002 Wanjiku"), (PHONE, "KCSE 36611030002 Wanjiku")]
    commands = [(phone, parse(body)) for phone, body in sent]
    lookup = prefetch_results(session, [c for _, c in commands], {phone for phone, _ in commands})
    statements = []
    listen = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(session.get_bind(), "before_cursor_execute", listen)
    try:
        with session.no_autoflush, batched_disclosures(session):
            replies = [respond(session, message_id=i, phone=phone, command=command, stored_language=None,
                               gate=OpenGate(), ussd_code="*384*1234#", lookup=lookup).text
                       for i, (phone, command) in enumerate(commands)]
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", listen)
    assert replies == [NO_MATCH] * 9 + [LIMITED, GRADES, LIMITED]  # the one before and nine of the batch
    assert len([s for s in statements if "audit_events" in s and s.lstrip().upper().startswith("SELECT")]) == 1
    assert [a[0] for a in audits(session)].count("results_miss") == 10
    assert [a[0] for a in audits(session)].count("results_refused") == 2


def test_the_limit_holds_through_the_inbound_drain(sms_runtime, texts):  # noqa: F811
    """End to end: the drain writes each batch's audit rows at its end, and the next batches count them."""
    with sms_runtime.db.transaction() as s:
        add_result(s)
    for name in ("Akinyi", "Otieno", "Mohamed", "Abdi", "Kamau", "Achieng", "Njeri", "Kiprono", "Chebet", "Wafula"):
        assert texts(f"KCSE 36611030002 {name}") == [NO_MATCH]
        sms_runtime.redis.flushdb()  # the per-minute and per-hour limits, tested elsewhere, start afresh
    assert texts("KCSE 36611030002 Wanjiku") == [LIMITED]
    assert texts("KCSE 36611030002 Wanjiku", sender=OTHER) == [GRADES]


def _a_batch(session, sent: list[tuple[int, str, str]]) -> list[str]:
    """The replies to ``(message id, phone, text)``, answered as the inbound drain answers a batch."""
    from registry.services.audit import batched_disclosures
    from registry.services.sms_commands import parse
    from registry.services.sms_replies import OpenGate, prefetch_results, respond

    commands = [(message_id, phone, parse(body)) for message_id, phone, body in sent]
    lookup = prefetch_results(session, [c for _, _, c in commands], {phone for _, phone, _ in commands})
    with session.no_autoflush, batched_disclosures(session):
        return [respond(session, message_id=message_id, phone=phone, command=command, stored_language=None,
                        gate=OpenGate(), ussd_code="*384*1234#", lookup=lookup).text
                for message_id, phone, command in commands]


@pytest.mark.postgres
def test_two_batches_at_once_do_not_both_count_from_the_trail(pg_database):
    """Two drains answering one phone at once each counted its misses from the trail without the
    other's: a phone at nine misses got its tenth in one batch and a name checked in the other (here
    the right one: the grades). Now the second batch waits for the first one's misses to commit and
    reads them: its name is not checked, the phone is told to try tomorrow; other phones do not wait."""
    from sqlalchemy import func, select, text

    from registry.models import AuditEvent
    from tests.pg_waits import Behind

    with pg_database.transaction() as session:
        add_result(session, name="Jane Wambui Wanjiku")
        _a_batch(session, [(i, PHONE, f"KCSE 36611030002 Otieno{chr(97 + i)}") for i in range(9)])
    with pg_database.transaction() as session:
        assert _a_batch(session, [(20, PHONE, "KCSE 36611030002 Kamau")]) == [NO_MATCH]
        with pg_database.transaction() as other:  # another phone's batch meanwhile: it waits for nothing
            other.execute(text("SET LOCAL lock_timeout = '100ms'"))
            assert _a_batch(other, [(21, OTHER, "KCSE 36611030002 Wanjiku")]) == [GRADES]
        second = Behind(pg_database, lambda other: _a_batch(other, [(22, PHONE, "KCSE 36611030002 Wanjiku")]))
    assert second.result() == [LIMITED]
    with pg_database.transaction() as session:
        counts = dict(session.execute(select(AuditEvent.action, func.count()).group_by(AuditEvent.action)).all())
    assert counts == {"results_miss": 10, "results_refused": 1, "results_replied": 1}
