"""Parsing inbound SMS commands (CONTRACT "SMS commands"): case-insensitive, English and Kiswahili.

- ``KCSE 36611030002 Wanjiku [2024]``, also the legacy ``36611030002KCSE`` and ``KCSE36611030002``
  forms and ``36611030002 KCSE``; the same for KCPE, and KPSEA/KJSEA with assessment numbers;
- any of these after ``RESULTS``/``MATOKEO`` (Kiswahili answers ``MATOKEO``), also ``MATOKEO YA``,
  ``RESULTS FOR``/``OF``, and either alone is ``HELP`` (it tells how to ask for results);
- ``UPI``; ``HELP``/``MSAADA``; ``STOP``/``SITISHA``; ``START``/``ANZA``; anything else is unknown. An
  unknown text that starts with a number keeps it (``36611030002 Wanjiku``: the exam is missing).

Written as phones send them: punctuation around a word (``Stop!``, ``upi?``, ``"Wanjiku"``), words
of no letter or digit (an emoji, a lone ``-``) and a label before the name (``Name: Wanjiku``,
``Jina: Wanjiku``) are ignored; a KCSE/KCPE index typed in pieces
(``36611030/002``, ``366110 30002``) or run into the name (``36611030002Wanjiku``) is read as its
digits (11 in a real one; another count is a malformed request, answered with the count); the year
may stand anywhere after the number, or between the exam and the number (``KCSE 2024 36611030002
Wanjiku``; ``KJSEA 2025 3042170336 Wanjiku``, when the word after the year has a digit); a
year-looking piece is the year unless it completes an index's 11 digits in a year the exam was not
sat (``KCSE 1930 1012001``; ``KCSE 3661103 2024`` is 2024).
CONTRACT names only the trailing year: the rest is what people type, read as they most likely mean it.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from ..exams import EXAMS as EXAM_YEARS

EXAMS = ("KCSE", "KCPE", "KPSEA", "KJSEA")
INDEX_EXAMS = ("KCSE", "KCPE")  # 11-digit KNEC index numbers; KPSEA/KJSEA use assessment numbers
MAX_NAMES = 4  # more names than this in one request are refused: no spraying every name at once
MIN_NAME_LETTERS = 3  # a name counts alone from 3 letters; a shorter piece (Wa, Mo) or initial only beside one


class CommandKind(enum.StrEnum):
    RESULTS = "results"
    UPI = "upi"
    HELP = "help"
    STOP = "stop"
    START = "start"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    language: str | None = None  # the keyword's own language (MSAADA -> sw); None: the phone's choice
    exam: str | None = None
    number: str | None = None  # index or assessment number as typed, upper-cased, leading zeros kept (a
    # KCSE/KCPE index typed in pieces: its digits); on an unknown command, the number it starts with
    # (results asked for without the exam)
    names: tuple[str, ...] = ()
    year: int | None = None

    @property
    def valid_number(self) -> bool:
        """Whether ``number`` has the shape of the exam's identifier (KCSE/KCPE: exactly 11 digits)."""
        if not self.number or not self.exam:
            return False
        if self.exam in INDEX_EXAMS:
            return _INDEX.fullmatch(self.number) is not None
        return _ASSESSMENT.fullmatch(self.number) is not None

    @property
    def index_digits(self) -> int | None:
        """For a KCSE/KCPE request whose number is digits only, how many it has; else None."""
        if self.exam in INDEX_EXAMS and self.number and _DIGITS.fullmatch(self.number):
            return len(self.number)
        return None


KEYWORDS: dict[str, tuple[CommandKind, str | None]] = {
    "HELP": (CommandKind.HELP, "en"),
    "MSAADA": (CommandKind.HELP, "sw"),
    "STOP": (CommandKind.STOP, "en"),
    "SITISHA": (CommandKind.STOP, "sw"),
    "START": (CommandKind.START, "en"),
    "ANZA": (CommandKind.START, "sw"),
    "UPI": (CommandKind.UPI, None),
}
# Words people put before a results request ("MATOKEO KCSE 36611030002 Wanjiku"): skipped, in their language.
LEADING_WORDS: dict[str, str] = {"RESULTS": "en", "RESULT": "en", "MATOKEO": "sw"}
LINKING_WORDS = frozenset({"YA", "FOR", "OF"})  # "matokeo ya KCSE …", "results for KCSE …": skipped too

_EXAM = "|".join(EXAMS)
_EXAM_FIRST = re.compile(rf"({_EXAM})[/-]?([0-9][0-9A-Z/-]*)", re.IGNORECASE)  # KCSE36611030002, KCSE-36611030002
_EXAM_LAST = re.compile(rf"([0-9][0-9A-Z/-]*?)({_EXAM})", re.IGNORECASE)  # 36611030002KCSE
_NUMBER_FIRST = re.compile(r"[0-9]{6,15}")  # a text starting with a number, the exam left out
_DIGITS = re.compile(r"[0-9]+")  # ASCII: \d takes any script's digits
_ASSESSMENT = re.compile(r"[0-9A-Z][0-9A-Z/-]{3,31}")
_YEAR = re.compile(r"(19|20)[0-9][0-9]")
_SEPARATORS = re.compile(r"[,;:#*.!?\"()\u201c\u201d\u201e]+")
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")  # what is not a letter or digit, around a word
INDEX_DIGITS = 11  # a KCSE/KCPE index: 8-digit centre code + 3-digit serial (DOMAIN)
_INDEX = re.compile(rf"[0-9]{{{INDEX_DIGITS}}}")
_INDEX_PIECE = re.compile(r"[0-9]+(?:[/-][0-9]+)*")  # 36611030/002, 366110-30002
_INDEX_AND_NAME = re.compile(r"([0-9]+(?:[/-][0-9]+)*)[/-]?([A-Z]{2}.*)", re.IGNORECASE)  # 36611030002Wanjiku
MAX_TEXT = 480  # longer texts are not commands; parsing stays cheap on junk
# "Name: Wanjiku", "JINA - Wanjiku": a label before the name, dropped (a lone "Name" is a name given)
_NAME_LABEL = re.compile(r"(?<![^\W\d_])(?:NAMES?|(?:MA)?JINA)\s*[:=\-\u2013\u2014]", re.IGNORECASE)


def parse(text: str) -> Command:
    """The command in an inbound SMS text. Never raises."""
    text = (text or "")[:MAX_TEXT]
    if _may_have_label(text):  # the label scan is a fifth of a parse, and nearly no text has one
        text = _NAME_LABEL.sub(" ", text)
    words = _SEPARATORS.sub(" ", text).split()
    # a word of letters and digits only has no edges to strip (\W is what str.isalnum refuses, and _)
    return _parse_tokens([token for token in (word if word.isalnum() else _EDGES.sub("", word) for word in words)
                          if token])


def _may_have_label(text: str) -> bool:
    """False only when ``_NAME_LABEL`` cannot match: an ASCII text without ``nam`` or ``jina`` in any
    case (case-insensitive matching beyond ASCII folds more letters, such as the long s and the
    dotless i, so any other text is scanned)."""
    if not text.isascii():
        return True
    lowered = text.lower()
    return "nam" in lowered or "jina" in lowered


def _parse_tokens(tokens: list[str]) -> Command:
    if not tokens:
        return Command(CommandKind.UNKNOWN)
    head = tokens[0].upper()
    if head in KEYWORDS:
        kind, language = KEYWORDS[head]
        return Command(kind, language)
    if head in LEADING_WORDS:
        language = LEADING_WORDS[head]
        rest = tokens[2:] if len(tokens) > 1 and tokens[1].upper() in LINKING_WORDS else tokens[1:]
        if not rest:
            return Command(CommandKind.HELP, language)
        command = _parse_tokens(rest)
        return command if command.language else dataclasses.replace(command, language=language)
    if (command := _parse_results(tokens)) is not None:
        return command
    if _NUMBER_FIRST.fullmatch(tokens[0]):
        return Command(CommandKind.UNKNOWN, number=tokens[0])
    return Command(CommandKind.UNKNOWN)


def _parse_results(tokens: list[str]) -> Command | None:
    head = tokens[0]
    second = tokens[1] if len(tokens) > 1 else ""
    number: str | None
    if head.upper() in EXAMS:
        exam, number, rest = head.upper(), (second or None), tokens[2:]
    elif (match := _EXAM_FIRST.fullmatch(head)) is not None:
        exam, number, rest = match.group(1).upper(), match.group(2), tokens[1:]
    elif (match := _EXAM_LAST.fullmatch(head)) is not None:
        exam, number, rest = match.group(2).upper(), match.group(1), tokens[1:]
    elif second.upper() in EXAMS and head[:1].isdigit():
        exam, number, rest = second.upper(), head, tokens[2:]
    else:
        return None
    year = None
    if exam in INDEX_EXAMS and number and _YEAR.fullmatch(number) and not _index_with(exam, [number, *rest]):
        if rest and rest[0][:1].isdigit():  # KCSE 2024 36611030002 Wanjiku
            year, number, rest = int(number), rest[0], rest[1:]
        else:  # KCSE 2024 Wanjiku: the year, and no index
            year, number = int(number), None
    elif exam not in INDEX_EXAMS and number and rest and _exam_year(exam, number) and any(
            ch.isdigit() for ch in rest[0]) and _ASSESSMENT.fullmatch(rest[0].upper()):
        # KJSEA 2025 3042170336 Wanjiku: the year, then the number (a name has no digit)
        year, number, rest = int(number), rest[0], rest[1:]
    if exam in INDEX_EXAMS and number:
        number, rest, year = _index_number(exam, number, rest, year)
    number = number.upper() if number else number
    if year is None:
        at = next((i for i in range(len(rest) - 1, -1, -1) if _YEAR.fullmatch(rest[i])), None)
        if at is not None:  # the last year given, wherever it stands after the number
            year, rest = int(rest[at]), rest[:at] + rest[at + 1:]
    names = tuple(rest)
    return Command(CommandKind.RESULTS, exam=exam, number=number, names=names, year=year)


def _exam_year(exam: str, token: str) -> bool:
    """Whether ``token`` is a year ``exam`` was sat in (not later than this year)."""
    if not _YEAR.fullmatch(token):
        return False
    sat, year = EXAM_YEARS[exam], int(token)
    return sat.first_year <= year <= min(sat.last_year or year, date.today().year)


def _pieces(tokens: list[str]) -> list[str]:
    """The index pieces ``tokens`` start with, read until they make 11 digits or more."""
    pieces: list[str] = []
    for token in tokens:
        if len(_joined(pieces)) >= INDEX_DIGITS or not _INDEX_PIECE.fullmatch(token):
            break
        pieces.append(token)
    return pieces


def _index_with(exam: str, tokens: list[str]) -> bool:
    """Whether the year-looking ``tokens[0]`` is the start of an index, not a year: with the pieces
    after it, and only with them, it makes 11 digits, and ``exam`` was not sat that year
    (``KCSE 1930 1012001`` is Nyeri's ``19301012001``; ``KCSE 2024 3661103`` is 2024 and 7 digits)."""
    with_it, without = len(_joined(_pieces(tokens))), len(_joined(_pieces(tokens[1:])))
    return with_it == INDEX_DIGITS and without != INDEX_DIGITS and not _exam_year(exam, tokens[0])


def _index_number(
    exam: str, number: str, rest: list[str], year: int | None
) -> tuple[str, list[str], int | None]:
    """A KCSE/KCPE index, the words after it and the year: the index's digits when typed in pieces
    (``36611030/002``; ``36611030 002``) or run into the name (``36611030002Wanjiku``), however many
    there are, so a wrong count can be told as such; else as typed. Pieces are read until they make
    11 digits; a last piece that looks like a year, with none given yet, is the year, also when it
    completes 11 digits if the exam was sat that year (``KCSE 3661103 2024 Wanjiku``: 7 digits and
    2024, not ``36611032024``: a 4-digit 2024 says a year, and a real index splits after its 8-digit
    centre code)."""
    if (match := _INDEX_AND_NAME.fullmatch(number)) is not None:
        return _joined([match.group(1)]), [match.group(2), *rest], year
    if not _INDEX_PIECE.fullmatch(number):
        return number, rest, year
    pieces = _pieces([number, *rest])
    used = len(pieces) - 1
    if year is None and len(pieces) > 1 and _YEAR.fullmatch(pieces[-1]) and (
            len(_joined(pieces)) != INDEX_DIGITS or _exam_year(exam, pieces[-1])):
        year = int(pieces.pop())
    return _joined(pieces), rest[used:], year


def _joined(pieces: list[str]) -> str:
    return "".join(pieces).replace("/", "").replace("-", "")


_NOT_ASCII_ALNUM = re.compile(r"[^a-z0-9]")


def name_key(name: str) -> str:
    """A name as compared: case, accents, spaces and punctuation ignored (``O'Brien`` == ``obrien``),
    and modifier letters too: U+02BC, the apostrophe some keyboards and exports write (``Ngʼangʼa``),
    is a letter to Unicode."""
    if name.isascii():  # most names: nothing to decompose (a fifth of the time)
        return _NOT_ASCII_ALNUM.sub("", name.lower())
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(ch for ch in decomposed
                   if ch.isalnum() and not unicodedata.combining(ch) and unicodedata.category(ch) != "Lm")


_DASHES = re.compile("[-\u2010-\u2015\u2212\ufe63\uff0d]")  # '-' and the dashes spreadsheets write for it


def dash_pieces(word: str) -> list[str]:
    """The keys of the parts of a word joined by dashes (``Kamau-Wa``: ``kamau``, ``wa``), whatever
    dash joins them; one part for a word without a dash. Empty parts are left out."""
    if word.isalnum():  # no dash in it (a dash is no letter or digit): the word's own key
        key = name_key(word)
        return [key] if key else []
    return [key for part in _DASHES.split(word) if (key := name_key(part))]


def name_keys(full_name: str) -> set[str]:
    """Every name in a full name, also each part of a hyphenated one (``Mary-Anne`` gives ``maryanne``,
    ``mary`` and ``anne``), whatever dash joins them. Not the pieces around an apostrophe: ``Ng'ang'a``
    is one name (``Ng'`` is one Swahili sound), and ``ng`` or ``ang`` is none."""
    keys: set[str] = set()
    for word in full_name.split():
        keys.add(name_key(word))
        if not word.isalnum():  # else its dash pieces are the word's own key (``dash_pieces``)
            keys.update(dash_pieces(word))
    keys.discard("")
    return keys
