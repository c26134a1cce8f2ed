"""The NEMIS transfer state machine: request -> release -> admit; every other move refused, nothing changed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from registry.models import (
    AuditEvent,
    EnrolmentState,
    Guardian,
    GuardianLink,
    Learner,
    MessageKind,
    OutboundMessage,
    PhoneSetting,
    TransferState,
)
from registry.services.transfers import TransferRefused, admit, cancel_transfer, release, request_transfer
from tests.pg_waits import Behind

from .support import learner, run_learners, snapshot, write_learners


@pytest.fixture
def schools(database, tmp_path):
    rows = [
        learner(upi="KE77XZ", first_name="Jane", last_name="Wanjiru", guardian_phone="0712345678"),
        learner(upi="KE77XZ", first_name="Jane", last_name="Wanjiru", guardian_phone="0722111222",
                guardian_relationship="father"),
        learner(upi="KE88YY", birth_certificate_no="3920418", institution_code="KS5L", institution_name="Kisumu Lakeside",
                county_code="042", guardian_phone="0733200300"),
        learner(upi="KE99ZZ", birth_certificate_no="4410925", institution_code="NY3H", institution_name="Othaya Senior",
                county_code="019", guardian_phone=""),
    ]  # fmt: skip
    run_learners(database, write_learners(tmp_path / "l.csv", rows))
    with database.transaction() as session:
        session.add(PhoneSetting(phone="+254722111222", language="sw"))
    return database


def _state(database, upi):
    with database.session() as session:
        lrn = session.scalars(select(Learner).where(Learner.upi == upi)).one()
        return lrn.institution.code, lrn.enrolment_state, [t.state for t in lrn.transfers]


def _notices(database):
    with database.session() as session:
        return [(m.recipient, m.kind, m.body) for m in session.scalars(select(OutboundMessage).order_by(OutboundMessage.id))]


GENERIC = {
    "en": "Elimu: there is an update about a learner linked to this number. Dial *384*1234# to check.",
    "sw": "Elimu: kuna taarifa mpya kuhusu mwanafunzi aliyeunganishwa na nambari hii. Piga *384*1234# kuangalia.",
}


def _verify(database, phone, upi):
    """``phone`` activated and its link to ``upi`` proven, as the USSD activation leaves them."""
    with database.transaction() as session:
        guardian = session.scalars(select(Guardian).where(Guardian.phone == phone)).one()
        guardian.activated_at, guardian.pin_hash = datetime.now(UTC), "x"
        link = session.scalars(select(GuardianLink).join(Learner).where(
            GuardianLink.guardian_id == guardian.id, Learner.upi == upi)).one()
        link.verified_at = datetime.now(UTC)


def _audits(database):
    with database.session() as session:
        return [(a.phone, a.action, a.channel, a.detail) for a in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_request_release_admit_moves_the_learner_and_notifies_each_guardian(schools, monkeypatch):
    monkeypatch.delenv("ELIMU_USSD_CODE", raising=False)  # the generic notice names the configured code
    with schools.transaction() as session:
        transfer = request_transfer(session, "ke77xz", "ks5l")
        assert transfer.requested_at is not None
    assert _state(schools, "KE77XZ") == ("NB7K", EnrolmentState.TRANSFER_REQUESTED, [TransferState.REQUESTED])
    assert _notices(schools) == []

    with schools.transaction() as session:
        assert release(session, "KE77XZ").released_at is not None
    assert _state(schools, "KE77XZ") == ("NB7K", EnrolmentState.RELEASED, [TransferState.RELEASED])
    released = _notices(schools)
    assert sorted(r for r, _, _ in released) == ["+254712345678", "+254722111222"]
    assert all(kind is MessageKind.NOTICE for _, kind, _ in released)

    with schools.transaction() as session:
        transfer = admit(session, "KE77XZ", "KS5L")
        assert transfer.admitted_at is not None and transfer.from_institution.code == "NB7K"
    assert _state(schools, "KE77XZ") == ("KS5L", EnrolmentState.ENROLLED, [TransferState.ADMITTED])
    notices = _notices(schools)
    assert len(notices) == 4
    # neither phone is verified for Jane (imported links only): a notice without learner data, each in its language
    for bodies in ({r: b for r, _, b in notices[:2]}, {r: b for r, _, b in notices[2:]}):
        assert bodies == {"+254712345678": GENERIC["en"], "+254722111222": GENERIC["sw"]}
    assert _audits(schools) == []


def test_a_phone_verified_for_the_learner_gets_the_names_and_schools_audited_the_others_a_generic_notice(schools):
    _verify(schools, "+254712345678", "KE77XZ")
    with schools.transaction() as session:
        request_transfer(session, "KE77XZ", "KS5L")
        release(session, "KE77XZ")
    with schools.transaction() as session:
        admit(session, "KE77XZ", "KS5L", ussd_code="*123#")
    notices = _notices(schools)
    released, admitted = {r: b for r, _, b in notices[:2]}, {r: b for r, _, b in notices[2:]}
    assert released["+254712345678"] == "Elimu: Jane W. has been released by Kilimani Primary to Kisumu Lakeside."
    assert admitted["+254712345678"] == "Elimu: Jane W. has been admitted to Kisumu Lakeside (from Kilimani Primary)."
    assert released["+254722111222"] == GENERIC["sw"]
    assert admitted["+254722111222"] == GENERIC["sw"].replace("*384*1234#", "*123#")
    for body in [*released.values(), *admitted.values()]:
        assert "Wanjiru" not in body and "KE77XZ" not in body and body.isascii() and len(body) <= 160
    assert _audits(schools) == [("+254712345678", "transfer_notice", "sms", "released"),
                                ("+254712345678", "transfer_notice", "sms", "admitted")]


def test_a_release_without_request_lets_any_other_school_admit(schools):
    with schools.transaction() as session:
        transfer = release(session, "KE88YY", " ks5l ")  # the releasing school named, as the learner's
        assert transfer.to_institution is None
    with schools.transaction() as session:
        admit(session, "KE88YY", "NY3H")
    assert _state(schools, "KE88YY") == ("NY3H", EnrolmentState.ENROLLED, [TransferState.ADMITTED])


def test_a_learner_without_phones_moves_without_notices(schools):
    with schools.transaction() as session:
        request_transfer(session, "KE99ZZ", "NB7K")
        release(session, "KE99ZZ")
        admit(session, "KE99ZZ", "NB7K")
    assert _notices(schools) == []


def _prepare(database, steps):
    for step in steps:
        with database.transaction() as session:
            step(session)


REQUESTED = [lambda s: request_transfer(s, "KE77XZ", "KS5L")]
RELEASED = [*REQUESTED, lambda s: release(s, "KE77XZ")]
RELEASED_UNREQUESTED = [lambda s: release(s, "KE77XZ")]


@pytest.mark.parametrize(
    ("steps", "move", "reason"),
    [
        ([], lambda s: admit(s, "KE77XZ", "KS5L"), "enrolled at NB7K and not released"),
        (REQUESTED, lambda s: admit(s, "KE77XZ", "KS5L"), "awaits release by NB7K"),
        (RELEASED, lambda s: admit(s, "KE77XZ", "NY3H"), "released to KS5L: only that school can admit"),
        (RELEASED_UNREQUESTED, lambda s: admit(s, "KE77XZ", "NB7K"), "cannot admit its own learner back"),
        ([], lambda s: request_transfer(s, "KE77XZ", "NB7K"), "already enrolled at NB7K"),
        (REQUESTED, lambda s: request_transfer(s, "KE77XZ", "NY3H"), "already has a transfer requested by KS5L"),
        (RELEASED, lambda s: request_transfer(s, "KE77XZ", "NY3H"), "already released by NB7K"),
        (RELEASED, lambda s: release(s, "KE77XZ"), "already released by NB7K"),
        ([], lambda s: release(s, "NOSUCH"), "no learner has UPI NOSUCH"),
        ([], lambda s: release(s, " "), "UPI is empty"),
        ([], lambda s: request_transfer(s, "KE77XZ", "ZZZZ"), "no institution has code ZZZZ"),
        ([], lambda s: admit(s, "KE77XZ", ""), "no institution has code"),
        ([], lambda s: cancel_transfer(s, "KE77XZ"), "has no transfer in progress: enrolled at NB7K"),
        ([], lambda s: release(s, "KE77XZ", "KS5L"), "KE77XZ is enrolled at NB7K, not KS5L: only NB7K can release"),
        ([], lambda s: release(s, "KE77XZ", "ZZZZ"), "no institution has code ZZZZ"),
        (REQUESTED, lambda s: cancel_transfer(s, "KE77XZ", "NY3H"), "NY3H is not a school of KE77XZ's transfer: only NB7K or KS5L"),
        (RELEASED_UNREQUESTED, lambda s: cancel_transfer(s, "KE77XZ", "KS5L"), "only NB7K can cancel it"),
        (RELEASED, lambda s: cancel_transfer(s, "KE77XZ", "ZZZZ"), "no institution has code ZZZZ"),
    ],
)
def test_moves_outside_the_state_machine_are_refused_and_change_nothing(schools, steps, move, reason):
    _prepare(schools, steps)
    before = snapshot(schools)
    with pytest.raises(TransferRefused, match=reason), schools.transaction() as session:
        move(session)
    assert snapshot(schools) == before


def test_two_schools_admitting_one_released_learner_at_once_admit_it_once(schools):
    """The second admission waits for the first to commit, then finds the learner enrolled."""
    with schools.transaction() as session:
        release(session, "KE88YY")
    with schools.transaction() as session:
        admit(session, "KE88YY", "NY3H")
        # seen waiting for this transaction before it commits: on PostgreSQL for the learner's row,
        # on SQLite for the database's write lock, which this admission holds
        other = Behind(schools, lambda s: admit(s, "KE88YY", "NB7K"))
    with pytest.raises(TransferRefused) as refused:
        other.result()
    assert refused.value.reason == "KE88YY is enrolled at NY3H and not released: that school releases first"
    assert _state(schools, "KE88YY") == ("NY3H", EnrolmentState.ENROLLED, [TransferState.ADMITTED])
    assert len(_notices(schools)) == 2  # one release notice and one admission notice to its one phone


def test_a_requested_transfer_cancelled_by_the_requesting_school_leaves_the_learner_enrolled_unnotified(schools):
    """A request that went nowhere no longer blocks other schools; guardians were never told of it."""
    _prepare(schools, REQUESTED)
    with schools.transaction() as session:
        assert cancel_transfer(session, "KE77XZ", "KS5L").state is TransferState.CANCELLED
    assert _state(schools, "KE77XZ") == ("NB7K", EnrolmentState.ENROLLED, [TransferState.CANCELLED])
    assert _notices(schools) == []
    with schools.transaction() as session:
        request_transfer(session, "KE77XZ", "NY3H")  # another school may now ask
    assert _state(schools, "KE77XZ")[1] is EnrolmentState.TRANSFER_REQUESTED


def test_a_release_cancelled_keeps_the_learner_at_the_school_and_tells_the_guardians(schools):
    """A learner released by mistake (or never admitted) goes back to enrolled at the releasing school,
    which admit refused ('cannot admit its own learner back'); the guardians told of the release are told."""
    _verify(schools, "+254712345678", "KE77XZ")
    _prepare(schools, RELEASED)
    with schools.transaction() as session:
        cancel_transfer(session, "KE77XZ")
    assert _state(schools, "KE77XZ") == ("NB7K", EnrolmentState.ENROLLED, [TransferState.CANCELLED])
    cancelled = {r: b for r, _, b in _notices(schools)[2:]}
    assert cancelled == {
        "+254712345678": "Elimu: the transfer of Jane W. has been cancelled; the learner stays at Kilimani Primary.",
        "+254722111222": GENERIC["sw"],
    }
    assert _audits(schools)[-1] == ("+254712345678", "transfer_notice", "sms", "cancelled")
    with schools.transaction() as session:
        release(session, "KE77XZ")  # the school may release again later
    assert _state(schools, "KE77XZ")[1] is EnrolmentState.RELEASED


def test_the_admission_notice_names_the_school_that_released_even_after_an_import_moved_the_learner(schools, tmp_path):
    """A learners.csv from NEMIS may list the learner at the new school before the admission here."""
    _verify(schools, "+254712345678", "KE77XZ")
    _prepare(schools, RELEASED)
    moved = [learner(upi="KE77XZ", first_name="Jane", last_name="Wanjiru", guardian_phone="0712345678",
                     institution_code="KS5L", institution_name="Kisumu Lakeside", county_code="042")]  # fmt: skip
    run_learners(schools, write_learners(tmp_path / "moved.csv", moved))
    with schools.transaction() as session:
        admit(session, "KE77XZ", "KS5L")
    admitted = {r: b for r, _, b in _notices(schools)[2:]}
    assert admitted["+254712345678"] == "Elimu: Jane W. has been admitted to Kisumu Lakeside (from Kilimani Primary)."


def test_transfer_notices_are_service_messages_sent_to_a_phone_that_sent_stop(schools):
    """STOP ends announcements only (CONTRACT); a notice about the phone's own learner still goes."""
    with schools.transaction() as session:
        session.get(PhoneSetting, "+254722111222").opted_out = True
        release(session, "KE77XZ")
    assert sorted(r for r, _, _ in _notices(schools)) == ["+254712345678", "+254722111222"]
