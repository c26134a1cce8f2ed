"""GSM 03.38 (GSM-7): which characters an SMS can carry in the 7-bit alphabet, and segment counting.

One character outside the alphabet switches the whole message to UCS-2 (70/67 characters per
segment instead of 160/153), so texts we compose are kept to GSM-7 with :func:`to_gsm7`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENSION = frozenset("^{}\\[~]|€\f")  # each takes two septets (escape + character)

# A character outside the basic table (an extension, or one GSM-7 lacks); texts without one, nearly
# all we send, take one septet a character and pass ``to_gsm7`` unchanged, found by one regex scan.
_BEYOND_BASIC = re.compile("[^" + "".join(re.escape(ch) for ch in sorted(BASIC)) + "]")

SINGLE_SEGMENT = {"gsm7": 160, "ucs2": 70}
CONCAT_SEGMENT = {"gsm7": 153, "ucs2": 67}

# Look-alikes phones and word processors produce, mapped to GSM-7 (signs of grades must survive).
_LOOKALIKES = {
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
    "\u2026": "...", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\t": " ",
    "\uff0b": "+", "\u207a": "+", "\u208a": "+", "\uff0d": "-", "\u207b": "-", "\u208b": "-",
}


def is_gsm7(text: str) -> bool:
    return all(ch in BASIC or ch in EXTENSION for ch in text)


def septets(text: str) -> int:
    """Length in GSM-7 septets (extension characters count two). Only meaningful when is_gsm7."""
    return sum(2 if ch in EXTENSION else 1 for ch in text)


def encoding(text: str) -> str:
    return "gsm7" if is_gsm7(text) else "ucs2"


def segments(text: str) -> int:
    """How many SMS segments ``text`` takes. An escaped pair never splits across two segments."""
    if _BEYOND_BASIC.search(text) is None:
        return 1 if len(text) <= SINGLE_SEGMENT["gsm7"] else -(-len(text) // CONCAT_SEGMENT["gsm7"])
    if encoding(text) == "ucs2":
        # UTF-16 code units; a character beyond the BMP (an emoji) is a surrogate pair, two units
        # that never split across segments, as an escaped GSM-7 pair never does
        if len(text.encode("utf-16-le")) // 2 <= SINGLE_SEGMENT["ucs2"]:
            return 1
        return _packed(text, CONCAT_SEGMENT["ucs2"], lambda ch: 2 if ord(ch) > 0xFFFF else 1)
    if septets(text) <= SINGLE_SEGMENT["gsm7"]:
        return 1
    return _packed(text, CONCAT_SEGMENT["gsm7"], lambda ch: 2 if ch in EXTENSION else 1)


def _packed(text: str, size: int, width: Callable[[str], int]) -> int:
    """Segments of ``size`` units filled in order, a character's units never split across two."""
    count, used = 1, 0
    for ch in text:
        units = width(ch)
        if used + units > size:
            count, used = count + 1, 0
        used += units
    return count


def fits(text: str, max_segments: int) -> bool:
    return segments(text) <= max_segments


def to_gsm7(text: str, replacement: str = "?") -> str:
    """Map look-alikes to GSM-7 (en dash -> '-', curly quotes -> straight), strip accents GSM-7
    lacks, and replace anything else with ``replacement``. ASCII grades pass through unchanged."""
    if _BEYOND_BASIC.search(text) is None:
        return text
    out: list[str] = []
    for ch in text:
        if ch in BASIC or ch in EXTENSION:
            out.append(ch)
            continue
        mapped = _LOOKALIKES.get(ch)
        if mapped is not None:
            out.append(mapped)
            continue
        base = unicodedata.normalize("NFKD", ch)
        stripped = "".join(c for c in base if not unicodedata.combining(c))
        if stripped and all(c in BASIC for c in stripped):
            out.append(stripped)
        else:
            out.append(replacement)
    return "".join(out)
