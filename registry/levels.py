"""School grades (class levels) as NEMIS lists them: PP1-PP2, Grade 1-12 (CBC), Form 1-4 (8-4-4)."""

from __future__ import annotations

import re

SCHOOL_GRADES: tuple[str, ...] = (
    "PP1",
    "PP2",
    *(f"Grade {n}" for n in range(1, 13)),
    *(f"Form {n}" for n in range(1, 5)),
)
_CANONICAL = {g.replace(" ", "").upper(): g for g in SCHOOL_GRADES}
_SPACES = re.compile(r"\s+")


class InvalidGrade(ValueError):
    """A class level that is not in ``SCHOOL_GRADES``."""


def normalize_school_grade(raw: str) -> str:
    """The canonical spelling of a class level (``grade 4``, ``GRADE4`` -> ``Grade 4``)."""
    text = _SPACES.sub("", raw or "").upper()
    if not text:
        raise InvalidGrade("grade is empty")
    try:
        return _CANONICAL[text]
    except KeyError:
        raise InvalidGrade(f"grade must be PP1, PP2, Grade 1-Grade 12 or Form 1-Form 4, not {raw.strip()!r}") from None
