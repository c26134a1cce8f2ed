"""GSM-7 segment counting and mapping (``registry.gsm``), the fast path for basic-only texts included."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry import gsm


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # 160 septets
        ("€" * 81, 2),
        ("a" * 152 + "€" + "a" * 153, 3),  # the escaped pair does not split: it opens the second segment
        ("a" * 70 + "\u0394", 1),  # Greek capital delta is in the basic table
        ("\u4e2d" * 70, 1),  # UCS-2
        ("\u4e2d" * 71, 2),
        ("\u4e2d" * 68 + "\U0001f600", 1),  # an emoji is two UTF-16 units: 70 in all
        ("\u4e2d" * 69 + "\U0001f600", 2),
        ("\u4e2d" * 67 + "\U0001f600" + "\u4e2d" * 65, 2),  # 134 units, the pair opening the second segment
        ("\u4e2d" * 66 + "\U0001f600" + "\u4e2d" * 66, 3),  # 134 units, but the pair would straddle 67|67
    ],
)
def test_segments(text, segments):
    assert gsm.segments(text) == segments


def test_grades_and_look_alikes_map_to_gsm7():
    assert gsm.to_gsm7("ENG:B+ KIS:A\u2212 \u201cMean\u201d B\u2013") == 'ENG:B+ KIS:A- "Mean" B-'
    assert gsm.to_gsm7("Wanjik\u0169 \u4e2d") == "Wanjiku ?"


def _reference_segments(text: str) -> int:
    """The per-character rule the module states, without its shortcuts."""
    if not all(ch in gsm.BASIC or ch in gsm.EXTENSION for ch in text):
        widths, single, size = [len(ch.encode("utf-16-le")) // 2 for ch in text], 70, 67
    else:
        widths, single, size = [2 if ch in gsm.EXTENSION else 1 for ch in text], 160, 153
    if sum(widths) <= single:
        return 1
    count, used = 1, 0
    for width in widths:
        if used + width > size:
            count, used = count + 1, 0
        used += width
    return count


_ALPHABET = sorted(gsm.BASIC | gsm.EXTENSION) + ["\u2013", "\u201c", "\u00e2", "\u4e2d", "\t", "\U0001f600"]


@given(st.text(alphabet=st.sampled_from(_ALPHABET), max_size=400) | st.text(max_size=200))
def test_segments_and_mapping_agree_with_the_per_character_rule(text):
    assert gsm.segments(text) == _reference_segments(text)
    mapped = gsm.to_gsm7(text)
    assert gsm.is_gsm7(mapped)
    if gsm.is_gsm7(text):
        assert mapped == text
