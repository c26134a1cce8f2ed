"""The parser's and the name check's fast paths (a word of letters and digits, an ASCII text without
a name label) give what the full path gives: here the full path is the code before them, kept as
the reference, and each is compared on texts and names built to reach the edges (the long s, the
dotless and dotted i that case-insensitive matching folds, modifier letters, underscores, dashes)."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import example, given, settings
from hypothesis import strategies as st

from registry.services import sms_commands as c

_TRICKY = "aAnNmMeEsSjJiIkK019_-/:=.,!? \u017f\u0131\u0130\u212a\u02bc\u2010\u2013\u00e9e\u0301\u0663\u00bd"
_WORDS = ["KCSE", "kcse", "KJSEA", "36611030002", "36611030/002", "2024", "Name:", "name", "NAMES=", "jina-",
          "Majina:", "Wa-Kamau", "Ng\u02bcang\u02bca", "\u017fam", "JINA\u2013", "Wanjiku", "O'Brien", "_x_", "\u0131",
          "NAM", "nAme -", "Stop!"]
texts = st.one_of(
    st.text(alphabet=_TRICKY, max_size=40),
    st.lists(st.one_of(st.sampled_from(_WORDS), st.text(alphabet=_TRICKY, min_size=1, max_size=8)),
             max_size=6).map(" ".join),
)


def reference_parse(text: str) -> c.Command:
    words = c._SEPARATORS.sub(" ", c._NAME_LABEL.sub(" ", (text or "")[:c.MAX_TEXT])).split()
    return c._parse_tokens([token for token in (c._EDGES.sub("", word) for word in words) if token])


def reference_dash_pieces(word: str) -> list[str]:
    return [key for part in c._DASHES.split(word) if (key := c.name_key(part))]


def reference_name_keys(full_name: str) -> set[str]:
    keys: set[str] = set()
    for word in full_name.split():
        keys.add(c.name_key(word))
        keys.update(reference_dash_pieces(word))
    keys.discard("")
    return keys


@settings(max_examples=600, deadline=None)
@given(texts)
@example("KCSE 36611030002 Name: Wanjiku")
@example("KCSE 36611030002 \u017fame: Wanjiku")  # the long s folds to s: not ASCII, scanned
@example("KCSE 36611030002 J\u0130NA: Wanjiku")
@example("KCSE 36611030002/ 2024 _Wanjiku_")
def test_parse_reads_every_text_as_the_full_path_does(text):
    assert c.parse(text) == reference_parse(text)


@settings(max_examples=600, deadline=None)
@given(texts)
@example("Mary-Anne Wa\u2013Kamau Ng\u02bcang\u02bca \u02bc\u02bc")
def test_a_names_keys_and_dash_pieces_are_those_of_the_full_path(text):
    assert c.name_keys(text) == reference_name_keys(text)
    for word in text.split():
        assert c.dash_pieces(word) == reference_dash_pieces(word)


def test_an_index_typed_in_pieces_is_joined_as_before():
    assert c._joined(["36611030/", "0-0", "2"]) == re.sub(r"[/-]", "", "36611030/0-02")
    assert unicodedata.normalize("NFC", c._joined(["1\u20132"])) == "1\u20132"  # only / and - are dropped


def reference_subject_grades(subjects: str) -> list[tuple[str, str]]:
    pairs = []
    for item in subjects.split(";"):
        code, sep, grade = item.partition(":")
        if sep and code.strip() and grade.strip():
            pairs.append((code.strip(), grade.strip()))
    return pairs


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ENGKIS:;+- AB\t\u00a0", max_size=40))
@example("ENG:B+; KIS : A- ;MAT:;:C;BIO:D- ")
def test_subject_grades_are_read_as_before(subjects):
    from registry.services.sms_replies import subject_grades

    assert subject_grades(subjects) == reference_subject_grades(subjects)
