"""Screen text: ASCII only, at most 160 characters with the ``CON ``/``END `` prefix, short names."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

SCREEN_LIMIT = 160
PREFIX_LENGTH = 4  # "CON " / "END "
BODY_LIMIT = SCREEN_LIMIT - PREFIX_LENGTH

_PLAIN = re.compile(r"[ -~\n]*")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})
_ABBREVIATIONS = (
    (r"\bSecondary\b", "Sec."),
    (r"\bPrimary\b", "Pri."),
    (r"\bSchool\b", "Sch."),
    (r"\bAcademy\b", "Acad."),
    (r"\bJunior\b", "Jr."),
    (r"\bSenior\b", "Sr."),
    (r"\bInternational\b", "Intl."),
    (r"\bMixed\b", "Mxd."),
    (r"\bComprehensive\b", "Comp."),
    (r"\bSaint\b", "St."),
    (r"\bBoarding\b", "Brdg."),
    (r"\bGirls'?", "Girls"),
    (r"\bBoys'?", "Boys"),
)


# Words a shortened name should not end on (English and Kiswahili).
_DANGLING = frozenset({"and", "of", "the", "for", "&", "na", "ya", "wa", "la", "cha", "za", "-"})


def ascii_text(value: str) -> str:
    """Printable ASCII: accents dropped (``Nyawĩra`` -> ``Nyawira``), other characters removed.

    Newlines are kept; tabs and other control characters become spaces.
    """
    if is_plain(value):
        return value
    value = unicodedata.normalize("NFKD", value.translate(_QUOTES))
    out = []
    for ch in value:
        if ch == "\n" or " " <= ch <= "~":
            out.append(ch)
        elif ch.isspace() or unicodedata.category(ch).startswith("C"):
            out.append(" ")
    return "".join(out)


def one_line(value: str) -> str:
    """ASCII on one line with single spaces."""
    return " ".join(ascii_text(value).split())


def shorten(value: str, limit: int) -> str:
    """A name within ``limit`` characters: common words abbreviated, then cut at a word with ``.``."""
    value = one_line(value)
    if len(value) <= limit:
        return value
    for pattern, short in _ABBREVIATIONS:
        value = re.sub(pattern, short, value, flags=re.IGNORECASE)
        value = " ".join(value.split())
        if len(value) <= limit:
            return value
    words = value.split(" ")
    kept = ""
    for word in words:
        candidate = f"{kept} {word}".strip()
        if len(candidate) + 1 > limit:
            break
        kept = candidate
    if not kept:  # one very long word
        return value[: max(limit - 1, 1)].rstrip(".") + "."
    kept_words = kept.rstrip(".,;:-'").split(" ")
    while len(kept_words) > 1 and kept_words[-1].lower() in _DANGLING:
        kept_words.pop()
    return " ".join(kept_words).rstrip(".,;:-'") + "."


def short_person(masked_name: str, limit: int = 18) -> str:
    """A masked name (``Jane W.``) kept to ``limit``: a long first name is cut, the initial kept."""
    name = one_line(masked_name)
    if len(name) <= limit:
        return name
    first, _, initial = name.rpartition(" ")
    if not first:
        return shorten(name, limit)
    # shorten marks a cut with ``.``: after a first name, beside the initial's own, it reads as a typo
    return f"{shorten(first, limit - len(initial) - 1).rstrip('.')} {initial}"[:limit]


def options_block(options: Sequence[tuple[str, str]]) -> list[str]:
    """Option lines ``N. Label``."""
    return [f"{key}. {label}" for key, label in options]


def compose(lines: Sequence[str]) -> str:
    """Join non-empty lines into one screen body (ASCII, no trailing space).

    Lines that are printable ASCII already (every text of the catalogues, and names once through
    ``one_line``) are checked once, joined, instead of one by one: a trailing space or other
    whitespace that ``rstrip`` drops is dropped alike by either way."""
    body = "\n".join([line.rstrip() for line in lines if line])
    if is_plain(body):
        return body
    return "\n".join(ascii_text(line).rstrip() for line in lines if line)


def is_plain(value: str) -> bool:
    """Whether ``value`` is printable ASCII and newlines only (``ascii_text`` leaves it as it is)."""
    return value.isascii() and _PLAIN.fullmatch(value) is not None


def fits(body: str) -> bool:
    return len(body) <= BODY_LIMIT


def paginate(items: Sequence[str], fixed: int, more_line: str, budget: int = BODY_LIMIT) -> list[list[int]]:
    """Split item lines into pages: each page's items plus ``fixed`` characters (and a
    ``more_line`` when another page follows) stay within ``budget``. Returns item indexes per page."""
    pages: list[list[int]] = []
    current: list[int] = []
    used = fixed
    for index, line in enumerate(items):
        cost = len(line) + 1
        # Room for this item and, if more follow, the "More" line.
        more_cost = len(more_line) + 1 if index < len(items) - 1 else 0
        if current and used + cost + more_cost > budget:
            pages.append(current)
            current, used = [], fixed
        current.append(index)
        used += cost
    if current or not pages:
        pages.append(current)
    return pages
