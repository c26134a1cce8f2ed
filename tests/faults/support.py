"""Data the fault tests share: one school of linked learners, released results, sent notices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from gateway.runtime import Runtime
from registry.models import (
    ExamResult,
    ExamSeries,
    Guardian,
    GuardianLink,
    Institution,
    Learner,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    Priority,
    utcnow,
)


@dataclass(frozen=True)
class Family:
    """What every seeded learner shares; learner n gets ``upi``/``birth_cert``/``last`` + n."""

    upi: str
    first: str
    last: str
    born: date
    gender: str
    birth_cert: str
    grade: str
    relationship: str


@dataclass(frozen=True)
class Results:
    """KCSE 2025 (released): ``count`` results, index number ``index`` + n (three digits)."""

    index: str
    count: int
    mean_grade: str
    points: int
    subjects: str


def seed_school(runtime: Runtime, phones: list[str], family: Family, results: Results, *,
                notices: int, notice_status: MessageStatus, notice_ids: str) -> None:
    """One learner per phone (linked), ``results``, and ``notices`` notices already handed to AT
    (provider ids ``notice_ids`` + n), awaiting their delivery reports."""
    with runtime.db.transaction() as s:
        school = Institution(code="WE4T", name="Kamukunji High", county_code="047")
        s.add(school)
        for n, phone in enumerate(phones):
            learner = Learner(upi=f"{family.upi}{n:05d}", first_name=family.first, last_name=f"{family.last}{n}",
                              date_of_birth=family.born, gender=family.gender,
                              birth_certificate_no=f"{family.birth_cert}{n}", grade=family.grade, institution=school)
            guardian = Guardian(phone=phone)
            s.add_all([learner, guardian,
                       GuardianLink(learner=learner, guardian=guardian, relationship_=family.relationship)])
        series = ExamSeries(exam="KCSE", year=2025, released_at=utcnow())
        s.add(series)
        s.flush()
        s.add_all([ExamResult(series_id=series.id, index_number=f"{results.index}{n:03d}",
                              candidate_name=f"{family.first} {family.last}{n}", mean_grade=results.mean_grade,
                              points=results.points, subjects=results.subjects)
                   for n in range(results.count)])
        s.add_all([OutboundMessage(recipient=phones[n % len(phones)], kind=MessageKind.NOTICE, body="notice",
                                   priority=Priority.REPLY, status=notice_status,
                                   provider_message_id=f"{notice_ids}{n}") for n in range(notices)])
