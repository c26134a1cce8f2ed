"""Demo data: deterministic, loads cleanly twice, covers every flow the README points to."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from registry import demo
from registry.identifiers import is_valid_assigned_upi, normalize_msisdn
from registry.models import (
    EnrolmentState,
    ExamSeries,
    Guardian,
    GuardianLink,
    Institution,
    Learner,
    PhoneSetting,
)
from registry.services import transfers
from registry.services.learners import find_learner, learners_for_phone
from registry.services.results import find_result

from .support import snapshot

README = Path(__file__).resolve().parents[2] / "README.md"


def test_demo_data_is_deterministic_and_well_formed():
    data = demo.build()
    assert data == demo.build()
    assert 45 <= len(data.learners) <= 55
    upis = [lrn.upi for lrn in data.learners]
    assert len(set(upis)) == len(upis) and all(is_valid_assigned_upi(u) for u in upis)
    for lrn in data.learners:
        for guardian in lrn.guardians:
            assert normalize_msisdn(guardian.phone) == guardian.phone


def test_seed_loads_every_flow_and_a_second_seed_changes_nothing(database):
    learners, results = demo.seed(database)
    assert learners.rejected == results.rejected == 0
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Institution)) == 3
        assert session.scalar(select(func.count()).select_from(Learner)) == len(demo.build().learners)
        assert [lrn.first_name for lrn in learners_for_phone(session, "+254712345678")] == ["Brian", "Jane", "Peter"]
        akinyi = find_learner(session, upi="WBWWGC")
        assert len(akinyi.guardian_links) == 2
        selves = session.scalars(select(Guardian.phone).join(GuardianLink).where(GuardianLink.relationship_ == "self"))
        assert {"+254722111222", "+254745600700"} <= set(selves)
        released = {(s.exam, s.year): s.released for s in session.scalars(select(ExamSeries))}
        assert released == {("KCSE", 2024): True, ("KCSE", 2025): True, ("KJSEA", 2025): True, ("KPSEA", 2025): False}
        assert find_result(session, "KCSE", "19301012001").mean_grade == "A-"
        assert find_result(session, "KCSE", "19301012014").series.year == 2025
        assert find_result(session, "KPSEA", "3047190112").released is False
        faith = find_learner(session, upi="QNWCEP")
        assert faith.enrolment_state is EnrolmentState.TRANSFER_REQUESTED
        assert faith.transfers[-1].to_institution.code == "KS5L"
        assert session.get(PhoneSetting, "+254790123456").language == "sw"

    before = snapshot(database)
    again = demo.seed(database)
    assert [r.added + r.updated for r in again] == [0, 0]
    assert snapshot(database) == before


def test_a_second_seed_leaves_what_was_done_with_the_demo_data_alone(database):
    """Trying the service moves the demo transfer on and may change a phone's language; seeding
    again moved an admitted learner back and requested its transfer anew (a cancelled one too),
    and put the phone back to Kiswahili."""
    demo.seed(database)
    with database.transaction() as session:
        transfers.release(session, "QNWCEP")
    with database.transaction() as session:
        transfers.admit(session, "QNWCEP", "KS5L")
    with database.transaction() as session:
        session.get(PhoneSetting, "+254790123456").language = "en"
    before = snapshot(database)
    again = demo.seed(database)
    assert [r.added + r.updated + r.rejected for r in again] == [0, 0]
    assert snapshot(database) == before
    with database.session() as session:
        faith = find_learner(session, upi="QNWCEP")
        assert (faith.institution.code, faith.enrolment_state) == ("KS5L", EnrolmentState.ENROLLED)
        assert [t.state.value for t in faith.transfers] == ["admitted"]
        assert session.get(PhoneSetting, "+254790123456").language == "en"


def test_a_seed_after_a_cancelled_demo_transfer_does_not_request_it_again(database):
    demo.seed(database)
    with database.transaction() as session:
        transfers.cancel_transfer(session, "QNWCEP")
    demo.seed(database)
    with database.session() as session:
        faith = find_learner(session, upi="QNWCEP")
        assert (faith.institution.code, faith.enrolment_state) == ("NB7K", EnrolmentState.ENROLLED)
        assert [t.state.value for t in faith.transfers] == ["cancelled"]


def test_readme_lists_the_demo_phones_and_identifiers():
    text = README.read_text(encoding="utf-8")
    for row in demo.featured_table():
        assert row in text, f"README.md lacks the demo row: {row}"
