"""Results replies for realistic candidates of every exam, driven as real inbound texts through the
HTTP edge, the inbound workers and the outbox: every subject and its grade exactly as imported (signs
kept), the wording of each exam's total, the segment budget in English and Kiswahili, the year
picked, and Kenyan name forms. The reply policy itself is in ``test_replies.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry import gsm
from tests.sms.support import add_result
from tests.sms.test_contract_sms import texts  # noqa: F401 - the end-to-end texting fixture
from tests.sms.test_replies import SHORT_NAME

KCSE_SUBJECTS = "ENG:B+;KIS:A-;MAT:A;BIO:B;CHE:B-;PHY:C+;HIS:B;GEO:A-;BST:C-"
KCPE_SUBJECTS = "ENG:73 B+;KIS:80 A-;MAT:88 A;SCI:70 B;SSR:65 B-"
KPSEA_SUBJECTS = "ENG:ME;KIS:EE;MAT:ME;ISC:AE;CAS:BE"
KJSEA_SUBJECTS = "ENG:EE2;KIS:ME1;MAT:ME2;ISC:ME1;SST:EE2;PTS:AE1;AGN:ME2;CAS:EE1;CRE:BE2"

# (exam, year, number, mean, points, subjects, English reply, Kiswahili reply)
FULL_CANDIDATES = [
    ("KCSE", 2025, "36611030002", "B+", 62, KCSE_SUBJECTS,
     "KCSE 2025 36611030002: Mean grade B+ (62 pts). ENG:B+, KIS:A-, MAT:A, BIO:B, CHE:B-, PHY:C+, HIS:B, "
     "GEO:A-, BST:C-",
     "KCSE 2025 36611030002: Wastani B+ (pointi 62). ENG:B+, KIS:A-, MAT:A, BIO:B, CHE:B-, PHY:C+, HIS:B, "
     "GEO:A-, BST:C-"),
    ("KCPE", 2023, "01234567890", "B", 376, KCPE_SUBJECTS,
     "KCPE 2023 01234567890: Mean grade B (376 marks). ENG:73 B+, KIS:80 A-, MAT:88 A, SCI:70 B, SSR:65 B-",
     "KCPE 2023 01234567890: Wastani B (alama 376). ENG:73 B+, KIS:80 A-, MAT:88 A, SCI:70 B, SSR:65 B-"),
    ("KJSEA", 2025, "A2025000456", "ME1", 54, KJSEA_SUBJECTS,
     "KJSEA 2025 A2025000456: Mean level ME1 (54 pts). ENG:EE2, KIS:ME1, MAT:ME2, ISC:ME1, SST:EE2, PTS:AE1, "
     "AGN:ME2, CAS:EE1, CRE:BE2",
     "KJSEA 2025 A2025000456: Wastani ME1 (pointi 54). ENG:EE2, KIS:ME1, MAT:ME2, ISC:ME1, SST:EE2, PTS:AE1, "
     "AGN:ME2, CAS:EE1, CRE:BE2"),
    ("KPSEA", 2025, "3047190112", "ME", None, KPSEA_SUBJECTS,
     "KPSEA 2025 3047190112: Mean level ME. ENG:ME, KIS:EE, MAT:ME, ISC:AE, CAS:BE",
     "KPSEA 2025 3047190112: Wastani ME. ENG:ME, KIS:EE, MAT:ME, ISC:AE, CAS:BE"),
]


@pytest.mark.parametrize("exam", ["KPSEA", "KJSEA"])
def test_a_cbc_assessment_gives_a_performance_level_not_a_grade(sms_runtime, texts, exam):  # noqa: F811
    """KPSEA and KJSEA report performance levels (EE, ME, AE, BE); 'Mean grade ME' used 8-4-4's word for
    them, and to a parent of a Grade 6 or Grade 9 learner a 'grade' is the class."""
    with sms_runtime.db.transaction() as session:
        add_result(session, exam=exam, index="3042170336", mean="ME2", points=None, subjects="ENG:ME2;MAT:EE1")
    [reply] = texts(f"{exam} 3042170336 Wanjiku")
    assert reply == f"{exam} 2025 3042170336: Mean level ME2. ENG:ME2, MAT:EE1"
    assert "grade" not in reply.lower()


@pytest.mark.parametrize(("exam", "year", "number", "mean", "points", "subjects", "english", "kiswahili"),
                         FULL_CANDIDATES, ids=[c[0] for c in FULL_CANDIDATES])
def test_a_full_candidate_of_each_exam_gets_every_subject_exactly(
        sms_runtime, texts, exam, year, number, mean, points, subjects, english, kiswahili):  # noqa: F811
    with sms_runtime.db.transaction() as session:
        add_result(session, exam=exam, year=year, index=number, name="Grace Wanjiru Ng'ang'a", mean=mean,
                   points=points, subjects=subjects)
    assert texts(f"{exam} {number} Wanjiru") == [english]
    assert texts(f"MATOKEO {exam} {number} Nganga", sender="+254700000009") == [kiswahili]
    for reply in (english, kiswahili):
        assert gsm.is_gsm7(reply) and gsm.segments(reply) == 1
        for item in subjects.split(";"):
            code, grade = item.split(":")
            assert f"{code}:{grade}" in reply  # the sign and the KCPE mark kept


# --- Kenyan name forms ----------------------------------------------------------------------------

NO_MATCH = ("No KCSE results were found for 36611030002 with that name. Check the number and the name; "
            "for an earlier year, add it: KCSE 36611030002 <name> <year>")


def _grades_shown(replies: list[str]) -> bool:
    [reply] = replies
    return reply.startswith("KCSE 2025 36611030002: Mean grade B+")


@pytest.mark.parametrize(("name", "shown"), [
    ("Ng'ang'a", True), ("Nganga", True), ("NG\u2019ANG\u2019A", True), ("Ng\u02bcang\u02bca", True),
    ("Ng", False), ("ang", False), ("Ng ang'a", False), ("Ng'eno", False),
])
def test_a_piece_of_a_name_with_apostrophes_is_no_name(sms_runtime, texts, name, shown):  # noqa: F811
    """'Ng' and 'ang' of 'Ng'ang'a' passed as names: the name was split at its apostrophes (Ng' is one
    Swahili sound, not a name), so 'KCSE <index> Ng' showed the grades of every Ng'ang'a, Ng'eno and
    Ng'etich."""
    with sms_runtime.db.transaction() as session:
        add_result(session, name="Peter Ng'ang'a Kamau")
    replies = texts(f"KCSE 36611030002 {name}")
    assert _grades_shown(replies) is shown
    if not shown:  # 'Ng' is also too short to count alone (test_name_check.py)
        assert replies == [SHORT_NAME if name == "Ng" else NO_MATCH]


@pytest.mark.parametrize("stored", ["Grace Ng\u02bcang\u02bca", "Grace Ng\u02bbang\u02bba", "Grace Ng\u2019ang\u2019a"])
@pytest.mark.parametrize("typed", ["Nganga", "Ng'ang'a", "Ng\u2019ang\u2019a"])
def test_a_name_imported_with_a_modifier_letter_apostrophe_matches_as_typed(sms_runtime, texts, stored, typed):  # noqa: F811
    """U+02BC (the apostrophe of Unicode's orthographies, which some keyboards and exports write) is
    a letter to Python: 'Ngʼangʼa' was compared as 'ngʼangʼa', so neither 'Nganga' nor 'Ng'ang'a'
    matched it and the parent was told there was no such candidate."""
    with sms_runtime.db.transaction() as session:
        add_result(session, name=stored)
    assert _grades_shown(texts(f"KCSE 36611030002 {typed}"))


@pytest.mark.parametrize("typed", ["Mary", "Anne", "Maryanne", "Mary-Anne", "Njeri", "Wa Njeri"])
def test_each_part_of_a_name_hyphenated_with_a_typographic_dash_counts(sms_runtime, texts, typed):  # noqa: F811
    """A spreadsheet writes 'Mary-Anne' with U+2010 or an en dash: the name was split only at '-', so
    'Mary' alone was no name of 'Mary\u2010Anne', though it is of 'Mary-Anne'."""
    with sms_runtime.db.transaction() as session:
        add_result(session, name="Mary\u2010Anne Wa\u2013Njeri Kamau")
    assert _grades_shown(texts(f"KCSE 36611030002 {typed}"))


# --- the year --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("exam", "number"), [("KJSEA", "3042170336"), ("KPSEA", "A1234567"), ("KPSEA", "3047190112")])
@pytest.mark.parametrize("asked", ["{exam} 2025 {number} Wanjiku", "{exam} {number} Wanjiku 2025",
                                   "{exam} {number} 2025 Wanjiku"])
def test_the_year_before_an_assessment_number_picks_the_year(sms_runtime, texts, exam, number, asked):  # noqa: F811
    """'KJSEA 2025 3042170336 Wanjiku' was read as assessment number 2025 and the name
    '3042170336 Wanjiku': 'No KJSEA results were found for 2025 with that name', which reads as if the
    year had none. The year may stand before the number for KPSEA and KJSEA as it may for KCSE."""
    with sms_runtime.db.transaction() as session:
        add_result(session, exam=exam, year=2025, index=number, mean="ME", points=None, subjects="ENG:ME;MAT:EE")
        add_result(session, exam=exam, year=2026, index=number, mean="EE", points=None, subjects="ENG:EE;MAT:EE")
    assert texts(asked.format(exam=exam, number=number)) == [f"{exam} 2025 {number}: Mean level ME. ENG:ME, MAT:EE"]


def test_the_signs_reach_africas_talking_as_imported(at_runtime, fake_at):
    """On the wire (the real AT SDK, form-encoded): a '+' not escaped would arrive as a space."""
    from gateway.app import create_app
    from tests.sms.support import work_queues

    with at_runtime.db.transaction() as session:
        add_result(session, subjects=KCSE_SUBJECTS)
    form = {"from": "+254712345678", "to": "22384", "text": "KCSE 36611030002 Wanjiku", "id": "ATXid_wire",
            "linkId": "L1", "date": "2026-01-09 10:00:00"}
    assert create_app(runtime=at_runtime).test_client().post("/sms/africastalking/inbound", data=form).status_code == 200
    work_queues(at_runtime)
    [seen] = fake_at.requests
    assert seen.form["message"] == FULL_CANDIDATES[0][6]


def test_an_index_reused_by_a_later_candidate_points_to_the_year(sms_runtime, texts):  # noqa: F811
    """A KCSE index is a centre code and a serial that starts again each year, so 36611030002 of 2024
    (Otieno) is 36611030002 of 2025 (Jane) too. Otieno's parent, without the year, was told there was
    no Otieno and to check the number and the name, both right: a dead end. The answer (the same for
    a number nobody holds) now says how to ask for an earlier year."""
    with sms_runtime.db.transaction() as session:
        add_result(session, year=2024, name="Brian Otieno Ouma", mean="C+", subjects="ENG:C+;MAT:C-")
        add_result(session, year=2025, name="Jane Wambui Wanjiku")
    [reply] = texts("KCSE 36611030002 Otieno")
    assert reply == ("No KCSE results were found for 36611030002 with that name. Check the number and the name; "
                     "for an earlier year, add it: KCSE 36611030002 <name> <year>")
    assert texts("KCSE 36611039999 Otieno") == [reply.replace("36611030002", "36611039999")]
    [kiswahili] = texts("Matokeo KCSE 36611030002 Otieno")
    assert kiswahili == ("Hakuna matokeo ya KCSE ya 36611030002 kwa jina hilo. Hakikisha nambari na jina; kwa mwaka "
                         "wa awali, uongeze: KCSE 36611030002 <jina> <mwaka>")
    assert all(gsm.is_gsm7(r) and gsm.segments(r) == 1 for r in (reply, kiswahili))
    assert texts("KCSE 36611030002 Otieno 2024") == ["KCSE 2024 36611030002: Mean grade C+ (62 pts). ENG:C+, MAT:C-"]


# --- any valid result fits its budget, signs intact, a cut marked ---------------------------------

_EXAM_NAMES = ["KCSE", "KCPE", "KPSEA", "KJSEA"]


@st.composite
def _valid_results(draw):
    from registry.exams import EXAMS
    from registry.services.sms_replies import FoundResult, Series

    exam = EXAMS[draw(st.sampled_from(_EXAM_NAMES))]
    codes = draw(st.lists(st.from_regex(r"[A-Z0-9]{2,8}", fullmatch=True), unique=True, max_size=14))
    grade = st.sampled_from(exam.grades)
    if exam.subject_marks:
        grade = st.builds(lambda mark, g: f"{mark} {g}", st.integers(0, 100), grade) | grade
    subjects = ";".join(f"{code}:{draw(grade)}" for code in codes)
    number = draw(st.from_regex(r"[0-9]{11}", fullmatch=True) if exam.name in ("KCSE", "KCPE")
                  else st.from_regex(r"[0-9A-Z][0-9A-Z/-]{3,31}", fullmatch=True))
    points = draw(st.none() | st.integers(0, exam.max_points))
    return FoundResult(None, number, "x", draw(st.sampled_from(exam.grades)), points, subjects,
                       Series(exam.name, draw(st.integers(exam.first_year, 2026)), True))


@given(_valid_results(), st.sampled_from(["en", "sw"]))
def test_any_valid_result_fits_two_gsm7_segments_with_its_grades_exact(result, language):
    from registry.services.sms_replies import format_results, subject_grades

    reply = format_results(result, language)
    assert gsm.is_gsm7(reply) and gsm.segments(reply) <= 2
    assert reply.startswith(f"{result.series.exam} {result.series.year} {result.index_number}: ")
    assert f" {result.mean_grade}" in reply.split(".", 1)[0]
    shown = reply.split(". ", 1)[1] if ". " in reply else ""
    items = [f"{code}:{grade}" for code, grade in subject_grades(result.subjects)]
    if shown.endswith("..."):  # cut: the first subjects, exactly, and the cut marked
        kept = shown.removesuffix("...").rstrip()
        assert any(kept == " ".join(items[:k]) for k in range(len(items)))
    else:  # every subject, exactly as imported
        assert shown in (", ".join(items), " ".join(items))
