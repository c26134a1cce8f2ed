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
