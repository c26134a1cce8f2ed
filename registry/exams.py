"""KNEC exams: names, the years each ran, and the grades each uses (kept exactly, signs included)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_LETTER_GRADES = ("A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "E")
# KNEC status marks printed in place of a grade: absent, irregularity (cancelled), withheld, pending.
STATUS_MARKS = ("X", "Y", "W", "P")
_LEVELS = ("EE", "ME", "AE", "BE", "EE1", "EE2", "ME1", "ME2", "AE1", "AE2", "BE1", "BE2")


@dataclass(frozen=True)
class Exam:
    """One KNEC exam: its grade set, the years it ran, and the largest total points it gives."""

    name: str
    grades: tuple[str, ...]
    first_year: int
    last_year: int | None
    max_points: int
    subject_marks: bool = False  # KCPE subject results may carry the mark: ``ENG:73 B+``


EXAMS: dict[str, Exam] = {
    "KCSE": Exam("KCSE", _LETTER_GRADES + STATUS_MARKS, 1989, None, 84),
    "KCPE": Exam("KCPE", _LETTER_GRADES + STATUS_MARKS, 1985, 2023, 500, subject_marks=True),
    "KPSEA": Exam("KPSEA", _LEVELS + STATUS_MARKS, 2022, None, 1000),
    "KJSEA": Exam("KJSEA", _LEVELS + STATUS_MARKS, 2025, None, 72),
}
_SUBJECT_CODE = re.compile(r"[A-Z0-9]{2,8}")
_MARK_AND_GRADE = re.compile(r"([0-9]{1,3}) (\S+)")
SUBJECT_MAX_MARK = 100  # a KCPE subject's mark (five subjects make the 500)


class InvalidExamData(ValueError):
    """An exam name, year, grade or subject list we cannot accept, with a reason."""


def _is_ascii_number(text: str) -> bool:
    """Digits 0-9 only (``str.isdigit`` also takes ``²`` and other scripts' digits)."""
    return text.isascii() and text.isdigit()


def exam_named(raw: str) -> Exam:
    """The exam for a name (case-insensitive): KCSE, KCPE, KPSEA or KJSEA."""
    name = (raw or "").strip().upper()
    try:
        return EXAMS[name]
    except KeyError:
        raise InvalidExamData(f"exam must be one of {', '.join(EXAMS)}, not {raw.strip()!r}") from None


def check_year(exam: Exam, raw: str | int, today: date | None = None) -> int:
    """A four-digit year in which ``exam`` was sat, not later than this year."""
    text = str(raw).strip()
    if not (len(text) == 4 and _is_ascii_number(text)):
        raise InvalidExamData(f"year must be four digits (YYYY), not {text!r}")
    year = int(text)
    this_year = (today or date.today()).year
    if year < exam.first_year:
        raise InvalidExamData(f"{exam.name} was first sat in {exam.first_year}, not {year}")
    if exam.last_year is not None and year > exam.last_year:
        raise InvalidExamData(f"{exam.name} was last sat in {exam.last_year}, not {year}")
    if year > this_year:
        raise InvalidExamData(f"year {year} is in the future")
    return year


def check_grade(exam: Exam, grade: str, what: str = "mean_grade") -> str:
    """``grade`` exactly as written when it is one of the exam's grades (case and sign matter)."""
    if grade not in exam.grades:
        raise InvalidExamData(f"{what} {grade!r} is not a {exam.name} grade ({' '.join(exam.grades)})")
    return grade


def check_points(exam: Exam, raw: str) -> int | None:
    """Total points or marks: blank, or a whole number from 0 to the exam's maximum."""
    text = (raw or "").strip()
    if not text:
        return None
    if not _is_ascii_number(text):
        raise InvalidExamData(f"points must be a whole number, not {text!r}")
    points = int(text)
    if points > exam.max_points:
        raise InvalidExamData(f"points {points} is above the {exam.name} maximum of {exam.max_points}")
    return points


def check_subjects(exam: Exam, raw: str) -> str:
    """Validate ``ENG:B+;KIS:A-;MAT:A`` and return it unchanged (blank stays blank), but for a
    trailing ``;`` that spreadsheets and hand-made files leave (``ENG:B+;KIS:A-;``), dropped."""
    text = (raw or "").strip().rstrip(";").rstrip()
    if not text:
        return ""
    seen: set[str] = set()
    for item in text.split(";"):
        code, sep, grade = item.strip().partition(":")
        code, grade = code.strip(), grade.strip()
        if not item.strip():
            raise InvalidExamData("subjects has an empty entry (two ';' in a row?)")
        if not sep or not code or not grade:
            raise InvalidExamData(f"subjects entry {item.strip()!r} is not CODE:GRADE")
        if not _SUBJECT_CODE.fullmatch(code):
            raise InvalidExamData(f"subject code {code!r} must be 2-8 capital letters or digits")
        if code in seen:
            raise InvalidExamData(f"subject {code} appears twice")
        seen.add(code)
        marked = _MARK_AND_GRADE.fullmatch(grade) if exam.subject_marks else None
        if marked and int(marked.group(1)) > SUBJECT_MAX_MARK:
            raise InvalidExamData(f"subject {code} mark {marked.group(1)} is above {SUBJECT_MAX_MARK}")
        check_grade(exam, marked.group(2) if marked else grade, what=f"subject {code} grade")
    return text
