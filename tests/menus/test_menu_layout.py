"""Screen text helpers: ASCII, shortening names without cutting words, paging."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from menus import layout


def test_ascii_text_drops_accents_and_smart_quotes():
    assert layout.ascii_text("Nyaw\u0129ra \u2018Kamau\u2019 \u2013 \u00e9cole\tX") == "Nyawira 'Kamau' - ecole X"


def test_ascii_text_removes_emoji_and_controls():
    assert layout.ascii_text("Jane\U0001f600\x07 W.\n") == "Jane  W.\n"


def test_shorten_abbreviates_before_cutting():
    assert layout.shorten("Nairobi Primary School", 18) == "Nairobi Pri. Sch."


def test_shorten_cuts_at_a_word_and_marks_it():
    short = layout.shorten("Our Lady of Perpetual Help Nyandarua Girls Academy", 24)
    assert short == "Our Lady of Perpetual."
    assert len(short) <= 24


def test_shorten_keeps_short_names():
    assert layout.shorten("Moi Girls", 30) == "Moi Girls"


def test_short_person_keeps_the_initial():
    assert layout.short_person("Wanjikumuthonimainawairimu K.", 14) == "Wanjikumut K."  # no cut mark beside the initial


@given(st.text(max_size=300), st.integers(min_value=2, max_value=80))
def test_shorten_never_exceeds_the_limit(value, limit):
    short = layout.shorten(value, limit)
    assert len(short) <= limit
    assert all(" " <= ch <= "~" for ch in short)


def test_paginate_fills_pages_and_reserves_the_more_line():
    items = [f"{i}. " + "x" * 20 for i in range(1, 11)]  # 23-24 characters each
    pages = layout.paginate(items, fixed=40, more_line="98. More", budget=156)
    assert [i for page in pages for i in page] == list(range(10))
    for number, page in enumerate(pages):
        used = 40 + sum(len(items[i]) + 1 for i in page)
        if number < len(pages) - 1:
            used += len("98. More") + 1
        assert used <= 156
    assert len(pages) == 3


def test_shorten_does_not_end_on_a_joining_word():
    assert layout.shorten("Kiambu Day and Boarding Academy", 16) == "Kiambu Day."
    assert layout.shorten("Shule ya Msingi ya Kilimani Mashariki", 20) == "Shule ya Msingi."


_LINE = st.text(st.sampled_from("ab Z~\n\t\x0b\x1c\x85\xa0\u2007\u3000\u1680\u0301\u00e9\u2019\U0001f600"), max_size=12)


@given(st.lists(st.one_of(_LINE, st.text(max_size=20)), max_size=6))
def test_compose_checks_the_whole_screen_once_as_it_checked_each_line(lines):
    """Lines of printable ASCII are joined as they are (one check for the screen); any other line
    is made ASCII as before, a trailing whitespace character of any kind dropped alike."""
    assert layout.compose(lines) == "\n".join(layout.ascii_text(line).rstrip() for line in lines if line)
