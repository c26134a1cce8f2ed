"""``elimu registry unlink-guardian``: a wrong or reassigned number taken off a learner, audited."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from registry.models import AuditEvent, Guardian, GuardianLink, Institution, Learner, utcnow
from registry.services.learners import verified_learners_for_phone
from tests.cli_support import run_elimu
from tests.registry.support import learner, run_learners, write_learners

WRONG = "+254712345678"
MOTHER = "+254722111222"


def _seed(database) -> None:
    """Jane with two phones, both verified: her mother's and a number the school mistyped."""
    now = utcnow()
    with database.transaction() as session:
        school = Institution(code="NB7K", name="Kilimani Primary", county_code="047")
        jane = Learner(upi="ZQ6NFN", first_name="Jane", last_name="Kamau", date_of_birth=date(2016, 5, 14),
                       gender="F", grade="Grade 4", institution=school)
        phones = [Guardian(phone=phone, pin_hash="$argon2id$x", activated_at=now) for phone in (WRONG, MOTHER)]
        session.add_all([jane, *phones])
        session.flush()
        session.add_all([GuardianLink(learner_id=jane.id, guardian_id=g.id, relationship_="mother", verified_at=now)
                         for g in phones])


def test_unlinking_a_verified_phone_ends_its_access_and_is_audited(database, tmp_path):
    _seed(database)
    with database.session() as session:
        assert [x.upi for x in verified_learners_for_phone(session, WRONG)] == ["ZQ6NFN"]

    done = run_elimu(database, tmp_path, "registry", "unlink-guardian", "zq6nfn", "0712 345 678", "--institution", "nb7k")

    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith(f"ZQ6NFN (Jane K.): {WRONG} (mother, verified ")
    assert done.stdout.rstrip().endswith("unlinked; 1 other phone(s) still linked")
    with database.session() as session:
        assert verified_learners_for_phone(session, WRONG) == []
        assert [x.upi for x in verified_learners_for_phone(session, MOTHER)] == ["ZQ6NFN"]
        assert session.scalar(select(Guardian).where(Guardian.phone == WRONG)) is not None  # the account stays
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "guardian_unlinked")).all()
        assert [(row.phone, row.channel) for row in audit] == [(WRONG, "cli")]
        assert audit[0].learner_id is not None and "(was verified)" in audit[0].detail


def test_refusals_say_why_and_change_nothing(database, tmp_path):
    _seed(database)
    cases = [
        (("ZQ6NFN", "0733000000"), "+254733000000 is not linked to ZQ6NFN"),
        (("ZZZZZZ", WRONG), "no learner has UPI"),
        (("ZQ6NFN", "0201234567"), "not a mobile number"),
        (("ZQ6NFN", WRONG, "--institution", "XX1"), "ZQ6NFN is not enrolled at XX1"),
    ]
    for args, reason in cases:
        done = run_elimu(database, tmp_path, "registry", "unlink-guardian", *args)
        assert done.exit_code == 1, (args, done.stdout)
        assert done.stderr.startswith("Error: refused: ") and reason in done.stderr, (args, done.stderr)
    with database.session() as session:
        assert len(session.scalars(select(GuardianLink)).all()) == 2
        assert session.scalars(select(AuditEvent)).all() == []


def test_a_reimport_links_the_number_again_unverified(database, tmp_path):
    """What the command's help says: the school must also correct its file."""
    path = write_learners(tmp_path / "l.csv", [learner(upi="ZQ6NFN", guardian_phone=WRONG)])
    run_learners(database, path)
    with database.transaction() as session:
        session.execute(GuardianLink.__table__.update().values(verified_at=utcnow()))
    assert run_elimu(database, tmp_path, "registry", "unlink-guardian", "ZQ6NFN", WRONG).exit_code == 0

    run_learners(database, path)

    with database.session() as session:
        links = session.scalars(select(GuardianLink)).all()
        assert [link.verified_at for link in links] == [None]


def test_messages_naming_the_learner_still_queued_for_the_phone_are_not_sent(database, tmp_path):
    """A notice, UPI or results queued while the phone was verified for Jane, or an announcement to her class,
    not yet sent when it is unlinked (a reassigned SIM), is withdrawn; its other learner's (and the
    school's announcement: he is there too), and Jane's other phone's, still go."""
    from registry.models import MessageKind, MessageStatus, OutboundMessage
    from registry.outbox import queue_sms
    from registry.services.announcements import announce
    from registry.services.guardian_links import WITHDRAWN
    from registry.services.notices import notify_guardians
    from tests.sms.support import add_result

    _seed(database)
    with database.transaction() as session:
        jane = session.scalars(select(Learner).where(Learner.upi == "ZQ6NFN")).one()
        peter = Learner(upi="ZKA8MQ", first_name="Peter", last_name="Kamau", date_of_birth=date(2013, 9, 2),
                        gender="M", grade="Grade 7", institution=jane.institution)
        session.add(peter)
        session.flush()
        wrong = session.scalar(select(Guardian).where(Guardian.phone == WRONG))
        session.add(GuardianLink(learner_id=peter.id, guardian_id=wrong.id, relationship_="mother", verified_at=utcnow()))
        session.flush()
        notify_guardians(session, jane, "released", school="Kilimani Primary", other="Kisumu Lakeside")
        notify_guardians(session, peter, "released", school="Kilimani Primary", other="Kisumu Lakeside")
        queue_sms(session, WRONG, MessageKind.UPI, "Elimu: the UPI of Jane K. is ZQ6NFN.")
        queue_sms(session, WRONG, MessageKind.UPI, "Elimu: the UPI of Peter K. is ZKA8MQ.")
        add_result(session, index="19301012001", name="Jane Kamau", learner=jane)
        add_result(session, index="19301012002", name="Peter Kamau", learner=peter)
        for index in ("19301012001", "19301012002"):  # nameless replies waiting out a retry (AT down)
            queue_sms(session, WRONG, MessageKind.REPLY, f"KCSE 2025 {index}: Mean grade B+")
        announce(session, jane.institution, "Grade 4 trip on Friday.", grade="grade 4 ")  # Jane's class only
        announce(session, jane.institution, "School closes on Friday.")  # Peter is still there

    done = run_elimu(database, tmp_path, "registry", "unlink-guardian", "ZQ6NFN", WRONG)

    assert done.exit_code == 0, done.stderr
    assert done.stdout.rstrip().endswith("; 4 queued message(s) about the learner not sent")
    with database.session() as session:
        rows = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
        status = {(m.recipient, m.body): (m.status, m.failure_reason) for m in rows}
    withdrawn = [body for (phone, body), (st, why) in status.items() if st == MessageStatus.FAILED and why == WITHDRAWN]
    assert sorted(withdrawn) == ["Elimu: Jane K. has been released by Kilimani Primary to Kisumu Lakeside.",
                                 "Elimu: the UPI of Jane K. is ZQ6NFN.", "Grade 4 trip on Friday.",
                                 "KCSE 2025 19301012001: Mean grade B+"]
    assert all(phone == WRONG for (phone, body), (st, _) in status.items() if st != MessageStatus.QUEUED)
    assert sorted((phone, body) for (phone, body), (st, _) in status.items() if st == MessageStatus.QUEUED) == sorted([
        (MOTHER, "Elimu: Jane K. has been released by Kilimani Primary to Kisumu Lakeside."),
        (MOTHER, "Grade 4 trip on Friday."), (MOTHER, "School closes on Friday."),
        (WRONG, "Elimu: Peter K. has been released by Kilimani Primary to Kisumu Lakeside."),
        (WRONG, "Elimu: the UPI of Peter K. is ZKA8MQ."), (WRONG, "School closes on Friday."),
        (WRONG, "KCSE 2025 19301012002: Mean grade B+")])
    with database.session() as session:
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "guardian_unlinked")).one()
        assert audit.detail.endswith("(was verified); 4 queued message(s) withdrawn")


def test_a_withdrawn_notice_is_not_left_in_the_audit_trail_as_a_disclosure(database, tmp_path):
    """The transfer notice's audit row is written when it is queued; unlinked before it went, the
    phone never got it: the trail records the withdrawal (and of its UPI message), and
    ``elimu audit --learner`` marks the notice withdrawn, the other phone's not."""
    import json

    from registry.models import MessageKind, OutboundMessage
    from registry.outbox import queue_sms
    from registry.services.notices import notify_guardians

    _seed(database)
    with database.transaction() as session:
        jane = session.scalars(select(Learner).where(Learner.upi == "ZQ6NFN")).one()
        notify_guardians(session, jane, "released", school="Kilimani Primary", other="Kisumu Lakeside")
        upi = queue_sms(session, WRONG, MessageKind.UPI, "Elimu: the UPI of Jane K. is ZQ6NFN.")
        upi_id = upi.id

    assert run_elimu(database, tmp_path, "registry", "unlink-guardian", "ZQ6NFN", WRONG).exit_code == 0

    with database.session() as session:
        notice_id = session.scalar(select(OutboundMessage.id).where(OutboundMessage.recipient == WRONG,
                                                                     OutboundMessage.kind == MessageKind.NOTICE))
        withdrawn = session.execute(select(AuditEvent.phone, Learner.upi, AuditEvent.reference, AuditEvent.detail)
                                    .join(Learner, Learner.id == AuditEvent.learner_id)
                                    .where(AuditEvent.action == "disclosure_withdrawn")
                                    .order_by(AuditEvent.reference)).all()
    assert sorted(withdrawn) == sorted([
        (WRONG, "ZQ6NFN", str(notice_id), "notice not sent: the phone was unlinked from the learner"),
        (WRONG, "ZQ6NFN", str(upi_id), "upi not sent: the phone was unlinked from the learner")])
    listed = json.loads(run_elimu(database, tmp_path, "audit", "--learner", "ZQ6NFN", "--json").stdout)
    notices = {r["phone"]: r["withdrawn"] for r in listed if r["action"] == "transfer_notice"}
    assert notices == {WRONG: True, MOTHER: False}
    table = run_elimu(database, tmp_path, "audit", "--learner", "ZQ6NFN").stdout.splitlines()
    marked = [line for line in table if "(withdrawn: never sent" in line]
    assert len(marked) == 1 and WRONG in marked[0] and "transfer_notice" in marked[0]
