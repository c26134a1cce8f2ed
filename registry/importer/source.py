"""Streaming CSV input: the header checked first, then read one row at a time.

Only the header can make a file unreadable. Further on, a damaged row (bytes that are not UTF-8, a
NUL byte, a field over the csv module's limit, a quote never closed) is a reason to reject that row,
so an import never stops halfway after writing batches.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Iterator, Sequence
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import IO

from .report import UnreadableFile

# Fed to the csv reader after the file's last line: a lone high surrogate, which decoding never
# produces (undecodable bytes become low surrogates), so a row holding it shows where the file ended.
_END = "\ud800"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_OTHER_SEPARATORS = {";": "';'", "\t": "tabs", "|": "'|'"}


def header_key(name: str) -> str:
    """A header cell as a column name: ``First Name`` -> ``first_name``."""
    return "_".join(name.strip().lower().replace("-", " ").split())


def text_problem(text: str, *, header: bool = False) -> str | None:
    """Why a row's text cannot be imported (a NUL byte, bytes that are not UTF-8), or None."""
    if "\x00" in text:
        return "NUL byte: this is not a text (CSV) file" if header else "NUL byte: this line is not text"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # an undecodable byte, kept as a surrogate (surrogateescape)
            return f"not UTF-8 text (byte 0x{ord(text[exc.start]) - 0xDC00:02x}); save the file as UTF-8"
    return None


def looks_utf16(path: Path) -> bool:
    """Whether the file starts like UTF-16 text (Excel's "Unicode Text"): its byte-order mark, or
    an ASCII character beside a NUL byte."""
    with path.open("rb") as fh:
        start = fh.read(2)
    return start in _UTF16_BOMS or (len(start) == 2 and start.count(0) == 1)


def other_separator(header: list[str]) -> str | None:
    """How the fields are separated when a header read as one cell holds ``;``, tabs or ``|``."""
    if len(header) != 1:
        return None
    return next((label for sep, label in _OTHER_SEPARATORS.items() if sep in header[0]), None)


def _line_breaks(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")


class CsvFile:
    """An open CSV file whose header holds every column the format needs.

    Iterate for ``(line, record)``: ``line`` is where the row starts in an editor (the header is
    line 1), ``record`` maps each known column to its stripped text, or is the reason the row
    cannot be read. ``swallowed`` lists ``(first, last)`` line ranges that a quote left open made
    one row (rejected at ``first``): the lines after ``first`` were not imported as rows.
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.swallowed: list[tuple[int, int]] = []
        if self.path.is_dir():
            raise UnreadableFile(f"{self.path}: is a folder, not a CSV file")
        if not self.path.is_file():
            raise UnreadableFile(f"{self.path}: no such file")
        try:
            self.size = self.path.stat().st_size
            self._file: IO[str] = self.path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
        except OSError as exc:
            raise UnreadableFile(f"{self.path}: {exc.strerror or exc}") from None
        self._reader = csv.reader(chain(self._file, (_END,)))
        try:
            keys, header = self._header(columns)
        except UnreadableFile:
            self.close()
            raise
        self.ignored_columns = [h for h, k in zip(header, keys, strict=True) if k not in columns and h.strip()]
        self._columns = tuple(columns)
        indices = [keys.index(c) for c in columns]
        # the cells of ``columns``, in their order, as a tuple (itemgetter gives a bare cell for one)
        self._pick = itemgetter(*indices) if len(indices) > 1 else lambda row: (row[indices[0]],)
        self._width = len(keys)
        self._keys, self._first_key = keys, keys[0]

    def _header(self, columns: Sequence[str]) -> tuple[list[str], list[str]]:
        """The header's column keys and cells; UnreadableFile when it cannot be the header."""
        name, at = self.path.name, "line 1"
        try:
            header = next(self._reader)
            if [cell.strip().lower() for cell in header] == ["sep=", ""]:  # Excel's "sep=," line: the header follows
                at = "line 2"
                header = next(self._reader)
        except csv.Error as exc:
            raise UnreadableFile(f"{name}: {at}: {exc}") from None
        if header and header[-1].endswith(_END):
            if header != [_END]:
                raise UnreadableFile(f"{name}: {at}: a quote opened in the header is never closed")
            header = []
        if not any(cell.strip() for cell in header):
            raise UnreadableFile(f"{name}: empty file: the first line must be the header")
        problem = text_problem("".join(header), header=True)
        if problem and "\x00" in "".join(header) and looks_utf16(self.path):
            problem = "UTF-16 text (NUL bytes); save the file as CSV UTF-8"
        if problem:
            raise UnreadableFile(f"{name}: {at}: {problem}")
        keys = [header_key(cell) for cell in header]
        twice = [c for c in columns if keys.count(c) > 1]
        if twice:
            where = "; ".join(
                f"{c} in columns {' and '.join(str(n) for n, k in enumerate(keys, 1) if k == c)}" for c in twice
            )
            raise UnreadableFile(f"{name}: {at}: the header names a column more than once ({where}): keep one")
        missing = [c for c in columns if c not in keys]
        if missing:
            separator = other_separator(header)
            hint = f"; its fields are separated by {separator}, not commas: save it as CSV (comma-separated)"
            raise UnreadableFile(
                f"{name}: {at}: header lacks column(s): {', '.join(missing)}{hint if separator else ''}"
            )
        return keys, header

    def position(self) -> int:
        """Bytes read so far (for a progress bar)."""
        try:
            return self._file.buffer.tell()
        except (OSError, ValueError):
            return self.size

    def __iter__(self) -> Iterator[tuple[int, dict[str, str] | str]]:
        """``(line, record)``, or ``(line, reason)`` for a row that cannot be read whole."""
        reader = self._reader
        previous = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # the reader starts afresh on the next line
                if reader.line_num == previous:
                    return
                line, previous = previous + 1, reader.line_num
                yield line, self._broken(line, previous, exc)
                continue
            line, previous = previous + 1, reader.line_num
            text = "".join(row)
            if not text.isascii() or "\x00" in text:
                if row[-1].endswith(_END):
                    if row != [_END]:
                        yield line, self._unclosed(line, row[-1][: -len(_END)], previous - 1)
                    return
                problem = text_problem(text)
                if problem:
                    yield line, problem
                    continue
            if not text.strip():
                continue  # blank line
            if len(row) != self._width:
                yield line, f"expected {self._width} fields as in the header, found {len(row)}"
                continue
            if header_key(row[0].lstrip("\ufeff")) == self._first_key and self._repeats_header(row):
                yield line, "this line repeats the header (files joined into one?)"
                continue
            yield line, dict(zip(self._columns, map(str.strip, self._pick(row)), strict=True))

    def _repeats_header(self, row: list[str]) -> bool:
        return [header_key(cell.lstrip("\ufeff")) for cell in row] == self._keys

    def _unclosed(self, line: int, field: str, last: int) -> str:
        """The reason for a row whose quoted ``field`` runs to the end of the file (its ``last`` line)."""
        for ending in ("\r\n", "\n", "\r"):
            if field.endswith(ending):
                field = field[: -len(ending)]
                break
        opened = last - _line_breaks(field)
        if last == line:
            return f"a quote opened on line {opened} is never closed"
        self.swallowed.append((line, last))
        return (
            f"a quote opened on line {opened} is never closed: lines {line}-{last}, to the end of the file, "
            "were read as this one row and not imported"
        )

    def _broken(self, line: int, last: int, exc: csv.Error) -> str:
        """The reason for a row the csv module gave up on at its ``last`` line."""
        reason = str(exc)
        if not reason.startswith("field larger than field limit"):
            return reason
        limit = csv.field_size_limit()
        if last == line:
            return f"a field is longer than {limit} characters"
        self.swallowed.append((line, last))
        return (
            f"a quoted field is still open at line {last}, over {limit} characters: is a closing quote "
            f"missing? Lines {line}-{last} were not imported; reading went on at line {last + 1}"
        )

    def close(self) -> None:
        if hasattr(self, "_file"):
            self._file.close()

    def __enter__(self) -> CsvFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
