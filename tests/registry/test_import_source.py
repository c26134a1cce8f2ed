"""CsvFile on damaged input: only the header makes a file unreadable; a damaged row further on is a
rejected line and reading goes on after it (the import never stops halfway after writing batches)."""

from __future__ import annotations

import csv
import re

import pytest

from registry.importer import CsvFile, UnreadableFile

from .support import run_results, write_results

HEADER = b"a,b,c\n"


def _read(tmp_path, content: bytes) -> tuple[list[tuple[int, object]], list[tuple[int, int]]]:
    """What CsvFile yields for ``content`` (records shown as "ok"), and its swallowed line ranges."""
    path = tmp_path / "any.csv"
    path.write_bytes(content)
    with CsvFile(path, ["a", "b", "c"]) as source:
        rows = [(line, "ok" if isinstance(record, dict) else record) for line, record in source]
        return rows, source.swallowed


@pytest.fixture
def small_field_limit():
    """A field limit of 100 characters (the csv module's is 131072), restored afterwards."""
    before = csv.field_size_limit(100)
    yield 100
    csv.field_size_limit(before)


def test_bytes_that_are_not_utf8_after_the_header_reject_their_line_only(tmp_path):
    rows, _ = _read(tmp_path, HEADER + b"1,2,3\n1,J\xe9r\xf4me,3\n1,2,\xed\xa0\x80\n7,8,9\n7,8,\xc3")
    assert rows == [
        (2, "ok"),
        (3, "not UTF-8 text (byte 0xe9); save the file as UTF-8"),
        (4, "not UTF-8 text (byte 0xed); save the file as UTF-8"),  # an encoded surrogate is not UTF-8 either
        (5, "ok"),
        (6, "not UTF-8 text (byte 0xc3); save the file as UTF-8"),  # the file ends inside a character
    ]


def test_a_nul_byte_after_the_header_rejects_its_line_only(tmp_path):
    rows, _ = _read(tmp_path, HEADER + b"1,2,3\n1,\x00,3\n\x00\x00\x00\n7,8,9\n")
    nul = "NUL byte: this line is not text"
    assert rows == [(2, "ok"), (3, nul), (4, nul), (5, "ok")]


def test_accented_utf8_text_is_not_a_problem(tmp_path):
    rows, _ = _read(tmp_path, "a,b,c\n1,Jérôme Wanjikũ,3\n".encode())
    assert rows == [(2, "ok")]


def test_an_oversized_field_rejects_its_line_and_reading_goes_on(tmp_path, small_field_limit):
    rows, swallowed = _read(tmp_path, HEADER + b"1,2,3\n1," + b"x" * 150 + b",3\n4,5,6\n")
    assert rows == [(2, "ok"), (3, "a field is longer than 100 characters"), (4, "ok")]
    assert swallowed == []


def test_a_quote_open_past_the_field_limit_names_the_lines_skipped(tmp_path, small_field_limit):
    content = HEADER + b'1,"open,3\n' + b"x,y,z\n" * 30 + b"4,5,6\n"
    rows, swallowed = _read(tmp_path, content)
    last = 18  # the quoted field: 7 characters on line 2 ("open,3\n"), 6 a line after, 103 by line 18
    assert rows[0] == (
        2,
        f"a quoted field is still open at line {last}, over 100 characters: is a closing quote missing? "
        f"Lines 2-{last} were not imported; reading went on at line {last + 1}",
    )
    assert rows[1:] == [(line, "ok") for line in range(last + 1, 34)]
    assert swallowed == [(2, last)]


UNCLOSED = "a quote opened on line {} is never closed"


@pytest.mark.parametrize(
    ("content", "reason", "swallowed"),
    [
        (HEADER + b'1,2,3\n4,"5,6\n7,8,9\n10,11,12\n', UNCLOSED.format(3)
         + ": lines 3-5, to the end of the file, were read as this one row and not imported", [(3, 5)]),
        (HEADER + b'1,2,3\r\n4,"5,6\r\n7,8,9\r\n10,11,12', UNCLOSED.format(3) + ": lines 3-5", [(3, 5)]),
        (HEADER + b'1,2,3\n4,"multi\nline","open\nmore\n', UNCLOSED.format(4) + ": lines 3-5", [(3, 5)]),
        (HEADER + b'1,2,3\n7,8,"9', UNCLOSED.format(3), []),
    ],
)  # fmt: skip
def test_a_quote_never_closed_names_where_it_opened_and_the_lines_lost(tmp_path, content, reason, swallowed):
    rows, found = _read(tmp_path, content)
    assert len(rows) == 2 and rows[0] == (2, "ok")
    assert rows[1][0] == 3 and rows[1][1].startswith(reason)
    assert found == swallowed


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"a,b\xe9,c\n1,2,3\n", "line 1: not UTF-8 text (byte 0xe9)"),
        (b"\xff\xfea\x00,\x00b\x00\n\x00", "line 1: UTF-16 text (NUL bytes); save the file as CSV UTF-8"),
        ("a,b,c\n1,2,3\n".encode("utf-16-be"), "line 1: UTF-16 text (NUL bytes); save the file as CSV UTF-8"),
        (b"ab\x00,c\n", "line 1: NUL byte: this is not a text (CSV) file"),
        (b"a;b;c\n1;2;3\n", "header lacks column(s): a, b, c; its fields are separated by ';', not commas: save it as"),
        (b"a\tb\tc\n", "header lacks column(s): a, b, c; its fields are separated by tabs, not commas"),
        (b'a,"b,c\n1,2,3\n', "line 1: a quote opened in the header is never closed"),
        (b"a,b,c" + b"x" * 200_000 + b"\n1,2,3\n", "line 1: field larger than field limit"),
        (b"a,b,c,B \n1,2,3,4\n", "line 1: the header names a column more than once (b in columns 2 and 4): keep one"),
    ],
)
def test_a_damaged_header_is_unreadable(tmp_path, content, reason):
    path = tmp_path / "any.csv"
    path.write_bytes(content)
    with pytest.raises(UnreadableFile, match=re.escape(reason)):
        CsvFile(path, ["a", "b", "c"])


def test_an_excel_separator_line_before_the_header_is_skipped(tmp_path):
    """``sep=,`` on line 1 tells Excel the separator; the header is line 2 and rows are numbered on."""
    rows, _ = _read(tmp_path, b"\xef\xbb\xbfSEP=,\r\na,b,c\r\n1,2,3\r\n4,5\r\n")
    assert rows == [(3, "ok"), (4, "expected 3 fields as in the header, found 2")]
    path = tmp_path / "any.csv"
    path.write_bytes(b"sep=,\na,b\n")
    with pytest.raises(UnreadableFile, match=r"any.csv: line 2: header lacks column\(s\): c$"):
        CsvFile(path, ["a", "b", "c"])


def test_a_header_repeated_further_on_says_so(tmp_path):
    """Two exports joined (``copy a.csv+b.csv``): the second's header, its BOM included, is a line."""
    rows, _ = _read(tmp_path, b"a,b,c\r\n1,2,3\r\n\xef\xbb\xbfA,B ,c\r\n4,5,6\r\na,x,c\r\n")
    assert rows == [(2, "ok"), (3, "this line repeats the header (files joined into one?)"), (4, "ok"), (5, "ok")]


def test_a_column_the_format_does_not_use_may_appear_twice(tmp_path):
    rows, _ = _read(tmp_path, b"a,notes,b,c,Notes\n1,x,2,3,y\n")
    assert rows == [(2, "ok")]


def test_a_comma_separated_header_lacking_a_column_gets_no_separator_hint(tmp_path):
    path = tmp_path / "any.csv"
    path.write_bytes(b"a;x,b\n")
    with pytest.raises(UnreadableFile, match=r"line 1: header lacks column\(s\): a, c$"):
        CsvFile(path, ["a", "b", "c"])


def test_rows_after_a_damaged_row_are_imported(database, tmp_path):
    """The audit's case: 1,200 good rows, one with a field over 200,000 characters, more good rows."""
    good = [{"exam": "KCSE", "year": "2025", "index_number": f"{36611000000 + i:011d}", "upi": "",
             "candidate_name": f"Candidate {i}", "mean_grade": "B", "points": "", "subjects": ""}
            for i in range(1205)]  # fmt: skip
    huge = {**good[0], "candidate_name": "x" * 200_001}
    path = write_results(tmp_path / "r.csv", [*good[:1200], huge, *good[1200:]])
    with path.open("ab") as fh:
        fh.write(b"KCSE,2025,36611099990,,J\xe9r\xf4me,B,,\nKCSE,2025,36611099991,,\x00,B,,\n")
    report, rejected = run_results(database, path)
    assert rejected == [
        (1202, "a field is longer than 131072 characters"),
        (1208, "not UTF-8 text (byte 0xe9); save the file as UTF-8"),
        (1209, "NUL byte: this line is not text"),
    ]
    assert (report.added, report.rejected) == (1205, 3)
