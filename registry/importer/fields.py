"""Checks for single CSV fields, each returning the stored value or raising ValueError with a reason."""

from __future__ import annotations

import re
from datetime import date

from ..identifiers import InvalidMsisdn, normalize_msisdn

RELATIONSHIPS = frozenset(
    {
        "self", "mother", "father", "parent", "guardian", "grandmother", "grandfather", "grandparent",
        "brother", "sister", "sibling", "aunt", "uncle", "relative", "sponsor", "other",
    }
)  # fmt: skip
_CODE = re.compile(r"[A-Z0-9/-]{1,16}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# a long number as a spreadsheet saves it (``1.23457E+12``): its last digits are gone
_SHORTENED_NUMBER = re.compile(r"[0-9](\.[0-9]+)?E\+[0-9]{1,3}")
_SEVERAL_NUMBERS = re.compile(r"[0-9][0-9 ()-]{7,}[0-9]")  # runs of a phone's digits, apart by "/", "," or words
SHORTENED = "a spreadsheet shortened the number and its digits are lost: format the column as text and export again"


def text(value: str, name: str, max_length: int, required: bool = False) -> str | None:
    """Inner runs of blanks collapsed; ``None`` when blank."""
    cleaned = " ".join(value.split())
    if not cleaned:
        if required:
            raise ValueError(f"{name} is required")
        return None
    if len(cleaned) > max_length:
        raise ValueError(f"{name} is longer than {max_length} characters")
    return cleaned


def code(value: str, name: str) -> str:
    """An institution code (NEMIS UIC): letters, digits, ``/`` or ``-``, upper-cased."""
    cleaned = value.strip().upper()
    if not cleaned:
        raise ValueError(f"{name} is required")
    if not _CODE.fullmatch(cleaned):
        raise ValueError(f"{name} must be up to 16 letters or digits, not {value!r}")
    return cleaned


def identifier(value: str, name: str) -> str | None:
    """A free-text identifier (birth certificate or assessment number), upper-cased; ``None`` when blank."""
    cleaned = " ".join(value.split()).upper()
    if _SHORTENED_NUMBER.fullmatch(cleaned):
        raise ValueError(f"{name} {value!r}: {SHORTENED}")
    if len(cleaned) > 32:
        raise ValueError(f"{name} is longer than 32 characters")
    return cleaned or None


def iso_date(value: str, name: str, today: date) -> date:
    """A date written ``YYYY-MM-DD``, not in the future."""
    if not value:
        raise ValueError(f"{name} is required")
    if not _ISO_DATE.fullmatch(value):
        raise ValueError(f"{name} must be YYYY-MM-DD, not {value!r}")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a calendar date") from None
    if parsed > today:
        raise ValueError(f"{name} {value} is in the future")
    if parsed.year < 1900:
        raise ValueError(f"{name} {value} is before 1900")
    return parsed


def gender(value: str) -> str:
    cleaned = value.strip().upper()
    if cleaned not in ("M", "F"):
        raise ValueError(f"gender must be M or F, not {value!r}" if value else "gender is required")
    return cleaned


def phone(value: str) -> str | None:
    """A Kenyan mobile number in E.164, ``None`` when blank."""
    if _SHORTENED_NUMBER.fullmatch(value.strip().upper()):
        raise InvalidMsisdn(SHORTENED)
    if len(_SEVERAL_NUMBERS.findall(value)) > 1:
        raise InvalidMsisdn("more than one number: give each guardian's phone on a row of its own")
    return normalize_msisdn(value) if value else None


def relationship(value: str) -> str:
    """The guardian's relationship, lower-case; blank means ``guardian``."""
    cleaned = value.strip().lower()
    if not cleaned:
        return "guardian"
    if cleaned not in RELATIONSHIPS:
        raise ValueError(f"guardian_relationship must be one of {', '.join(sorted(RELATIONSHIPS))}, not {value!r}")
    return cleaned
