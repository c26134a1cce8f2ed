"""Identifiers: Kenyan mobile numbers (MSISDN), UPIs and exam index numbers."""

from __future__ import annotations

import functools
import random
import re
import secrets
import unicodedata

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType


class InvalidMsisdn(ValueError):
    """A phone number we cannot use, with a reason a person can act on."""


_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


# The usual forms (``+254712345678``, ``0712 345 678``, ``712-345-678``…) whose national number
# phonenumbers' own Kenyan mobile pattern takes: such a number parses to ``+254`` + those nine
# digits, valid and mobile, so it is answered without the parse (1.4 us instead of 24 us: every
# inbound SMS and USSD session brings a number, an import millions). Tests hold it equal to the parse.
_KE_MOBILE = re.compile(phonenumbers.PhoneMetadata.metadata_for_region("KE").mobile.national_number_pattern)
_PHONE_FORM = re.compile(r"(?:\+?254|0)?([17][0-9]{8})")  # ASCII digits: others go to the parse
_PHONE_NOISE = str.maketrans("", "", " -.()")


@functools.lru_cache(maxsize=16384)
def normalize_msisdn(raw: str) -> str:
    """Any usual form of a Kenyan mobile number -> E.164 (``+2547…``/``+2541…``).

    Raises InvalidMsisdn for landlines, foreign numbers and malformed input. Answers are cached
    (a pure function; a USSD session sends the same number on every hop, and parsing costs more
    than the rest of a hop's validation); refusals are not cached.
    """
    match = _PHONE_FORM.fullmatch((raw or "").strip().translate(_PHONE_NOISE))
    if match and _KE_MOBILE.fullmatch(match.group(1)):
        return "+254" + match.group(1)
    return parse_msisdn(raw)


# Every refusal names the forms taken: an operator at ``elimu ... --phone`` or a clerk reading an
# import's rejected lines learns what to type, never phonenumbers' own words ("(1) The string...").
MSISDN_FORMS = "a Kenyan mobile number is 07... or 01... (10 digits), or +2547... or +2541..."
_PARSE_REFUSALS = {
    NumberParseException.INVALID_COUNTRY_CODE: "no country has the code after the +",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too few digits after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too few digits",
    NumberParseException.TOO_LONG: "too many digits for one phone number",
}


def _refused(reason: str) -> InvalidMsisdn:
    return InvalidMsisdn(f"{reason}; {MSISDN_FORMS}")


# What a phone number is written with besides digits (of any script) and blanks: a leading +, and
# the separators people put between groups (dashes of any kind, the minus sign, dots, brackets,
# slashes). phonenumbers also forgives the rest (letters, ``ext 5``, ``#5``, ``,5``, a leading
# ``+000``, ``Mary 0712...``), but a CSV cell or a CLI argument holding them is more likely a typing
# error than a phone, so they are refused, and only ever on the slow path (the fast path's forms
# hold none of them).
_SEPARATORS = frozenset("-.()/\u2212")
_SPREADSHEET_FLOAT = re.compile(r"\+?[0-9]{9,}\.0+")  # 254712345678.0: a number column, not text
_EXTENSION = re.compile(r"(?i)(?:;\s*ext\s*=\s*|e?xt(?:ension|n)?\.?|x|#|,|;)\s*[0-9]+\s*$")


def _strays(text: str) -> str:
    """The characters of ``text`` (NFKC-folded) no phone number is written with, in order, once each."""
    found = dict.fromkeys(
        ch for i, ch in enumerate(text)
        if not (ch.isdecimal() or ch.isspace() or ch in _SEPARATORS or (ch == "+" and i == 0)
                or unicodedata.category(ch) == "Pd")
    )
    return "".join(found)


def _check_written_form(text: str, digits: str) -> None:
    """Refuse what phonenumbers would tidy into a valid number but a person most likely mistyped."""
    folded = unicodedata.normalize("NFKC", text)
    if _SPREADSHEET_FLOAT.fullmatch(folded):
        raise _refused("it looks like a number a spreadsheet formatted (the .0 at the end): format the "
                       "column as text and export again")
    strays = _strays(folded)
    if strays:
        extension = _EXTENSION.search(folded)
        if extension:
            raise _refused(f"it has an extension ({extension.group(0).strip()!r}): a mobile number has none, "
                           "give the number alone")
        letters = "".join(ch for ch in strays if unicodedata.category(ch).startswith("L"))
        if letters:
            hint = " (0 and 1, not O, I or l)" if set(letters) <= set("OoIl") else ""
            raise _refused(f"it has letters ({letters!r}): give the digits only{hint}")
        raise _refused(f"it has characters a phone number is not written with ({strays!r})")
    if folded.startswith("+") and digits.startswith("0"):
        raise _refused("a + comes before the country code (+254...), never before 0")


def parse_msisdn(raw: str) -> str:
    """``normalize_msisdn`` by phonenumbers' full parse, for every form (the reference for its fast path).

    Besides phonenumbers' forms it takes ``254...`` without the plus, nine digits without the 0,
    and ``00254...`` (the international prefix of most countries; Kenya's own, ``000``, phonenumbers
    reads itself); digits of any script count as their ASCII digit."""
    text = (raw or "").strip()
    if not text:
        raise _refused("phone number is empty")
    digits = phonenumbers.normalize_digits_only(text)  # ASCII, also of digits in another script
    if not digits:
        raise _refused("not a phone number (it has no digits)")
    _check_written_form(text, digits)
    if not text.startswith("+") and digits.startswith("254") and len(digits) == 12:
        text = "+" + digits
    elif not text.startswith("+") and len(digits) == 9 and digits[0] in "17":
        text = "0" + digits
    elif not text.startswith("+") and digits.startswith("00") and not digits.startswith("000"):
        text = "+" + digits[2:]  # 00 254 7...: dialled from abroad; 00 44...: another country's number
    try:
        number = phonenumbers.parse(text, "KE")
    except NumberParseException as exc:
        reason = "too few digits" if len(digits) < 7 else "not a phone number"  # "+2", "0044": NOT_A_NUMBER too
        raise _refused(_PARSE_REFUSALS.get(exc.error_type, reason)) from None
    if number.country_code != 254:
        raise _refused(f"not a Kenyan number (country code +{number.country_code})")
    if not phonenumbers.is_valid_number(number):
        national = phonenumbers.national_significant_number(number)
        if len(national) < 9:
            raise _refused("not a valid Kenyan number: too few digits")
        if len(national) > 9:
            raise _refused("not a valid Kenyan number: too many digits")
        raise _refused("not a valid Kenyan number: no network has its prefix")
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise _refused("not a mobile number (landlines cannot receive SMS or use USSD)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# --- UPI ------------------------------------------------------------------------------------------
#
# Assigned UPIs are five random characters and one check character over a 31-character alphabet:
# the digits 2-9 and the letters without I, L and O (no 0/O or 1/I/L look-alikes). 31 is prime, so
# with position weights 6, 5, 4, 3, 2, 1 and the rule  sum(weight * value) = 0 (mod 31):
#  - a single wrong character at position i changes the sum by w_i * (v' - v), which is not 0 mod 31
#    because w_i is in 1..6 and v' != v are both in 0..30;
#  - swapping neighbours i, i+1 changes it by (w_i - w_{i+1}) * (v_{i+1} - v_i) = v_{i+1} - v_i,
#    which is not 0 unless the two characters are equal (then the swap changes nothing).
# Both hold for every position, the check character included (its weight is 1).

UPI_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
UPI_LENGTH = 6
_UPI_VALUE = {ch: i for i, ch in enumerate(UPI_ALPHABET)}
_UPI_WEIGHTS = tuple(range(UPI_LENGTH, 0, -1))  # 6, 5, 4, 3, 2, 1
_UPI_MAX_LENGTH = 32
_UPI_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/")
_UPI_FORM = re.compile(rf"[A-Z0-9/-]{{1,{_UPI_MAX_LENGTH}}}")


# A UPI as it stands in a message's text: a run of the stored form's characters between others
# (``ZQ6NFN`` in "Jane K. ZQ6NFN; Peter K. ZKA8MQ"). Assigned and imported UPIs alike.
_UPI_TOKEN = re.compile(rf"(?<![A-Za-z0-9/-])[A-Z0-9/-]{{1,{_UPI_MAX_LENGTH}}}(?![A-Za-z0-9/-])")


def upi_tokens(text: str) -> set[str]:
    """The words of ``text`` written as a stored UPI could be (upper-case letters, digits, ``/``, ``-``).

    A superset of the UPIs it holds: callers match them against ``Learner.upi``."""
    return set(_UPI_TOKEN.findall(text or ""))


class InvalidUpi(ValueError):
    """A UPI we cannot use, with a reason a person can act on."""


def upi_check_char(body: str) -> str:
    """The check character that completes a five-character body from ``UPI_ALPHABET``."""
    if len(body) != UPI_LENGTH - 1 or any(ch not in _UPI_VALUE for ch in body):
        raise ValueError(f"a UPI body is {UPI_LENGTH - 1} characters from {UPI_ALPHABET}")
    total = sum(w * _UPI_VALUE[ch] for w, ch in zip(_UPI_WEIGHTS, body, strict=False))
    return UPI_ALPHABET[-total % len(UPI_ALPHABET)]


def generate_upi(rng: random.Random | None = None) -> str:
    """A fresh assigned UPI (cryptographically random unless a seeded ``rng`` is given).

    Uniqueness is the database's job: callers insert under the unique constraint and retry.
    """
    size = len(UPI_ALPHABET)
    number = rng.randrange(size ** (UPI_LENGTH - 1)) if rng is not None else secrets.randbelow(size ** (UPI_LENGTH - 1))
    body = ""
    for _ in range(UPI_LENGTH - 1):
        number, digit = divmod(number, size)
        body += UPI_ALPHABET[digit]
    return body + upi_check_char(body)


def is_valid_assigned_upi(text: str) -> bool:
    """Whether ``text`` (case and surrounding blanks ignored) is a well-formed assigned UPI."""
    code = (text or "").strip().upper()
    if len(code) != UPI_LENGTH or any(ch not in _UPI_VALUE for ch in code):
        return False
    return sum(w * _UPI_VALUE[ch] for w, ch in zip(_UPI_WEIGHTS, code, strict=True)) % len(UPI_ALPHABET) == 0


def normalize_upi(raw: str) -> str:
    """A UPI as stored: stripped and upper-cased. Imported UPIs keep their own format.

    Raises InvalidUpi when empty, too long, or holding characters no UPI has.
    """
    code = (raw or "").strip().upper()
    if _UPI_FORM.fullmatch(code):
        return code
    if not code:
        raise InvalidUpi("UPI is empty")
    if len(code) > _UPI_MAX_LENGTH:
        raise InvalidUpi(f"UPI is longer than {_UPI_MAX_LENGTH} characters")
    bad = sorted({ch for ch in code if ch not in _UPI_CHARS})
    if bad:
        raise InvalidUpi(f"UPI has characters a UPI cannot have: {''.join(bad)!r}")
    return code


# --- Exam index and assessment numbers ----------------------------------------------------------

INDEX_NUMBER_EXAMS = ("KCSE", "KCPE")  # 11-digit index numbers: 8-digit centre code + 3-digit serial
ASSESSMENT_NUMBER_EXAMS = ("KPSEA", "KJSEA")  # the KNEC assessment number (format unconfirmed)
_INDEX_RE = re.compile(r"[0-9]{11}")  # ASCII: \d takes any script's digits
_ASSESSMENT_RE = re.compile(r"[A-Z0-9/-]{4,20}")


class InvalidIndexNumber(ValueError):
    """An exam index or assessment number we cannot use, with a reason."""


def is_index_number(text: str) -> bool:
    """Whether ``text`` is a KCSE/KCPE index number: exactly 11 digits."""
    return bool(_INDEX_RE.fullmatch(text or ""))


def normalize_index_number(raw: str, exam: str) -> str:
    """The candidate number of ``exam`` as stored: text, leading zeros kept.

    KCSE/KCPE: 11 digits (spaces inside are dropped). KPSEA/KJSEA: the assessment number, 4-20
    letters, digits, ``/`` or ``-``, upper-cased.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidIndexNumber("index number is empty")
    if exam.upper() in INDEX_NUMBER_EXAMS:
        digits = text.replace(" ", "")
        if not is_index_number(digits):
            raise InvalidIndexNumber(f"{exam.upper()} index number must be 11 digits, not {text!r}")
        return digits
    code = text.upper()
    if not _ASSESSMENT_RE.fullmatch(code):
        raise InvalidIndexNumber(f"assessment number must be 4-20 letters or digits, not {text!r}")
    return code
