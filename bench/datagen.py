"""Synthetic registry data for the benchmarks: deterministic, streamed, bulk-inserted."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from registry.models import ExamResult, ExamSeries, Guardian, GuardianLink, Institution, Learner, utcnow

FIRST = ["Wanjiku", "Achieng", "Kamau", "Otieno", "Njeri", "Kiprono", "Atieno", "Mwangi", "Chebet", "Wafula",
         "Akinyi", "Mutua", "Nyambura", "Omondi", "Jepkosgei", "Kariuki", "Auma", "Kiptoo", "Wambui", "Barasa"]
LAST = ["Kamau", "Odhiambo", "Mwangi", "Kiprotich", "Wanjiru", "Onyango", "Mutiso", "Chege", "Ruto", "Were",
        "Njoroge", "Ochieng", "Kilonzo", "Korir", "Nduta", "Okoth", "Maina", "Langat", "Wekesa", "Gitau"]
GRADES = ["A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "E"]
SUBJECTS = ["ENG", "KIS", "MAT", "BIO", "CHE", "PHY", "HIS", "GEO", "CRE"]
BATCH = 10_000


def phone(i: int) -> str:
    """A distinct valid Safaricom-range number per i (< 10**8)."""
    return f"+2547{10_000_000 + i:08d}"


def index_number(i: int) -> str:
    """11-digit KCSE index: an 8-digit centre code and a 3-digit serial."""
    return f"{20_000_000 + i // 500:08d}{i % 500 + 1:03d}"


def candidate(i: int) -> tuple[str, str]:
    return FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]


def _chunks(rows: Iterator[dict], size: int = BATCH) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def institution(session: Session, code: str, name: str, county: str = "047") -> int:
    existing = session.scalar(select(Institution.id).where(Institution.code == code))
    if existing:
        return existing
    school = Institution(code=code, name=name, county_code=county)
    session.add(school)
    session.flush()
    return school.id


def results(session: Session, count: int, exam: str = "KCSE", year: int = 2025) -> None:
    """``count`` released results of one exam series."""
    series = ExamSeries(exam=exam, year=year, released_at=utcnow())
    session.add(series)
    session.flush()
    rng = random.Random(7)
    now = utcnow()

    def rows() -> Iterator[dict]:
        for i in range(count):
            first, last = candidate(i)
            subjects = ";".join(f"{s}:{rng.choice(GRADES)}" for s in SUBJECTS[:7 + i % 3])
            yield dict(series_id=series.id, index_number=index_number(i), candidate_name=f"{first} {last}",
                       mean_grade=rng.choice(GRADES), points=rng.randint(12, 84), subjects=subjects,
                       created_at=now, updated_at=now)

    for chunk in _chunks(rows()):
        session.execute(insert(ExamResult), chunk)


def learners_with_guardians(session: Session, count: int, school_id: int, start: int = 0,
                            grade: str = "Form 3") -> None:
    """``count`` learners at one school, each with one guardian phone; birth cert ``BC<i>``, DOB from i."""
    now = utcnow()
    for chunk_start in range(start, start + count, BATCH):
        ids = range(chunk_start, min(start + count, chunk_start + BATCH))
        learners = []
        for i in ids:
            first, last = candidate(i)
            learners.append(dict(upi=f"B{i:07d}", first_name=first, last_name=last,
                                 date_of_birth=date(2008, 1, 1) + timedelta(days=i % 1500), gender="MF"[i % 2],
                                 birth_certificate_no=f"BC{i}", assessment_no=None, grade=grade,
                                 institution_id=school_id, enrolment_state="enrolled",
                                 created_at=now, updated_at=now))
        session.execute(insert(Learner), learners)
        session.execute(insert(Guardian), [dict(phone=phone(i), name=None, pin_failures=0, created_at=now,
                                                updated_at=now) for i in ids])
        learner_ids = dict(session.execute(select(Learner.upi, Learner.id).where(
            Learner.upi.in_([f"B{i:07d}" for i in ids]))).all())
        guardian_ids = dict(session.execute(select(Guardian.phone, Guardian.id).where(
            Guardian.phone.in_([phone(i) for i in ids]))).all())
        session.execute(insert(GuardianLink), [dict(learner_id=learner_ids[f"B{i:07d}"],
                                                    guardian_id=guardian_ids[phone(i)], relationship_="mother",
                                                    created_at=now, updated_at=now) for i in ids])


def analyze(database) -> None:
    """Fresh planner statistics after a bulk load, as autovacuum would gather within a minute or so
    (and as an operator runs after a big import): without them the first queries plan blind."""
    with database.engine.connect() as connection:
        connection.execute(text("ANALYZE"))
        connection.commit()


def dob_ddmmyyyy(i: int) -> str:
    return (date(2008, 1, 1) + timedelta(days=i % 1500)).strftime("%d%m%Y")


def learners_csv(path: Path, count: int) -> Path:
    """A learners.csv (contract format) of ``count`` learner-guardian rows, written streaming."""
    header = ["upi", "first_name", "middle_name", "last_name", "date_of_birth", "gender", "birth_certificate_no",
              "assessment_no", "institution_code", "institution_name", "county_code", "grade", "guardian_name",
              "guardian_phone", "guardian_relationship"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for i in range(count):
            first, last = candidate(i)
            school = i // 1000
            writer.writerow([f"C{i:07d}", first, "", last, (date(2008, 1, 1) + timedelta(days=i % 3000)).isoformat(),
                             "MF"[i % 2], f"CB{i}", "", f"S{school:05d}", f"Bench School {school}",
                             f"{school % 47 + 1:03d}", "Grade 7", f"Parent {last}",
                             "07" + f"{20_000_000 + i:08d}", "mother"])
    return path
