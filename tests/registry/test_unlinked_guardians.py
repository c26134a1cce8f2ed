"""``guardians.unlinked_at``: when a guardian's last link came off, whatever took it off, and the
purge that counts the records' age of a guardian left with no learner from it (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import delete, select

from registry.models import Guardian, GuardianLink, Institution, Learner, utcnow
from registry.services.guardian_links import unlink_guardian
from registry.services.retention import forget_unlinked_guardians, purge
from tests.pg_waits import Behind

from .support import learner, run_learners, write_learners

YEARS_AGO = utcnow() - timedelta(days=6 * 365)
RECORDS = timedelta(days=1827)


def _seed(database, phones_of: dict[str, tuple[str, ...]], at: datetime = YEARS_AGO) -> None:
    """Learners (by UPI) linked to phones, every row last changed ``at``."""
    with database.transaction() as s:
        school = Institution(code="WE4T", name="Kamukunji High", county_code="047")
        guardians: dict[str, Guardian] = {}
        for number, (upi, phones) in enumerate(phones_of.items()):
            pupil = Learner(upi=upi, first_name="Jane", last_name=f"Wanjiku{number}", date_of_birth=date(2010, 1, 2),
                            gender="F", grade="Form 3", institution=school, created_at=at, updated_at=at)
            s.add(pupil)
            s.flush()
            for phone in phones:
                if phone not in guardians:
                    guardians[phone] = Guardian(phone=phone, name="Mary Wanjiku", created_at=at, updated_at=at)
                    s.add(guardians[phone])
                    s.flush()
                s.add(GuardianLink(learner_id=pupil.id, guardian_id=guardians[phone].id, created_at=at, updated_at=at))


def _unlinked_at(database, phone: str) -> datetime | None:
    with database.session() as s:
        return s.scalar(select(Guardian.unlinked_at).where(Guardian.phone == phone))


def _phones(database) -> list[str]:
    with database.session() as s:
        return sorted(s.scalars(select(Guardian.phone)))


def _remove_learner(database, upi: str) -> None:
    """A learner deleted outright (its links go with it, by the foreign key's cascade)."""
    with database.transaction() as s:
        s.execute(delete(Learner).where(Learner.upi == upi))


def _near_now(value: datetime | None) -> bool:
    assert value is not None
    return abs(value.replace(tzinfo=None) - utcnow().replace(tzinfo=None)) < timedelta(minutes=5)


def test_a_guardian_whose_last_learner_is_deleted_today_is_kept_for_the_records_age(database):
    """Untouched for six years, its learner deleted today: the records' age counts from today."""
    _seed(database, {"ABC234": ("+254700000001",)})
    _remove_learner(database, "ABC234")

    assert _near_now(_unlinked_at(database, "+254700000001"))
    with database.transaction() as s:
        assert purge(s, timedelta(days=90), RECORDS).guardian_rows == 0
    assert _phones(database) == ["+254700000001"]
    with database.transaction() as s:  # once the records' age has passed since then, it goes
        assert forget_unlinked_guardians(s, utcnow() + timedelta(minutes=5)) == 1
    assert _phones(database) == []


def test_a_guardian_unlinked_long_ago_goes_however_lately_its_row_changed(database):
    """Its row touched yesterday (a PIN lockout running out, say), its last link gone six years ago:
    nothing links it, so the records' age since the unlinking ends it."""
    _seed(database, {"ABC234": ("+254700000001",)})
    _remove_learner(database, "ABC234")
    with database.transaction() as s:
        row = s.scalars(select(Guardian)).one()
        row.unlinked_at, row.updated_at = YEARS_AGO, utcnow() - timedelta(days=1)

    with database.transaction() as s:
        assert purge(s, timedelta(days=90), RECORDS).guardian_rows == 1
    assert _phones(database) == []


def test_only_the_last_link_coming_off_marks_the_guardian(database):
    _seed(database, {"ABC234": ("+254700000001", "+254700000002"), "DEF567": ("+254700000001",)})
    _remove_learner(database, "ABC234")
    assert _unlinked_at(database, "+254700000001") is None  # still DEF567's
    assert _near_now(_unlinked_at(database, "+254700000002"))

    _remove_learner(database, "DEF567")
    assert _near_now(_unlinked_at(database, "+254700000001"))


def test_an_operator_s_unlink_marks_the_guardian_and_a_new_link_clears_it(database, tmp_path):
    path = write_learners(tmp_path / "l.csv", [learner(upi="ZQ6NFN", guardian_phone="+254712345678")])
    run_learners(database, path)
    assert _unlinked_at(database, "+254712345678") is None

    with database.transaction() as s:
        unlink_guardian(s, "ZQ6NFN", "+254712345678", by="test")
    assert _near_now(_unlinked_at(database, "+254712345678"))

    report, rejected = run_learners(database, path)  # the school's file still lists the number

    assert rejected == [] and report.added == 1
    assert _unlinked_at(database, "+254712345678") is None


def test_two_transactions_taking_off_a_guardian_s_last_two_links_at_once_mark_it(pg_database):
    """Each deletes one link while the other's delete is not yet committed: without the trigger's
    lock of the guardian's row each would see the other's link left, and neither mark it."""
    _seed(pg_database, {"ABC234": ("+254700000001",), "DEF567": ("+254700000001",)})
    with pg_database.transaction() as s:
        s.execute(delete(Learner).where(Learner.upi == "ABC234"))
        second = Behind(pg_database, lambda other: other.execute(delete(Learner).where(Learner.upi == "DEF567")))
    second.result()

    assert _near_now(_unlinked_at(pg_database, "+254700000001"))
    with pg_database.session() as s:
        assert s.scalars(select(GuardianLink)).all() == []
