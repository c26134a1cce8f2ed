"""Streaming CSV input: checked for UTF-8 and its header first, then read one row at a time."""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import IO

from .report import UnreadableFile

_CHUNK = 1 << 20


def _check_utf8(path: Path) -> None:
    """Read the whole file once, a chunk at a time, so a bad byte stops the import before it starts."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0
    with path.open("rb") as raw:
        while chunk := raw.read(_CHUNK):
            nul = chunk.find(b"\x00")
            if nul >= 0:
                line = lines_before + chunk.count(b"\n", 0, nul) + 1
                raise UnreadableFile(f"{path.name}: line {line}: NUL byte: this is not a text (CSV) file")
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line = lines_before + chunk.count(b"\n", 0, max(exc.start, 0)) + 1
                raise UnreadableFile(
                    f"{path.name}: line {line}: not UTF-8 text (byte 0x{chunk[exc.start]:02x}); save the file as UTF-8"
                ) from None
            lines_before += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise UnreadableFile(f"{path.name}: the file ends inside a character: not UTF-8 text") from None


def header_key(name: str) -> str:
    """A header cell as a column name: ``First Name`` -> ``first_name``."""
    return "_".join(name.strip().lower().replace("-", " ").split())


class CsvFile:
    """An open CSV file whose header holds every column the format needs.

    Iterate for ``(line, record)``: ``line`` is where the row starts in an editor (the header is
    line 1), ``record`` maps each known column to its stripped text.
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UnreadableFile(f"{self.path}: no such file")
        try:
            self.size = self.path.stat().st_size
            _check_utf8(self.path)
            self._file: IO[str] = self.path.open(encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise UnreadableFile(f"{self.path}: {exc.strerror or exc}") from None
        self._reader = csv.reader(self._file)
        try:
            header = next(self._reader, None)
        except csv.Error as exc:
            self.close()
            raise UnreadableFile(f"{self.path.name}: line 1: {exc}") from None
        if not header or not any(cell.strip() for cell in header):
            self.close()
            raise UnreadableFile(f"{self.path.name}: empty file: the first line must be the header")
        keys = [header_key(cell) for cell in header]
        missing = [c for c in columns if c not in keys]
        if missing:
            self.close()
            raise UnreadableFile(f"{self.path.name}: line 1: header lacks column(s): {', '.join(missing)}")
        self.ignored_columns = [h for h, k in zip(header, keys, strict=True) if k not in columns and h.strip()]
        self._columns = tuple(columns)
        indices = [keys.index(c) for c in columns]
        # the cells of ``columns``, in their order, as a tuple (itemgetter gives a bare cell for one)
        self._pick = itemgetter(*indices) if len(indices) > 1 else lambda row: (row[indices[0]],)
        self._width = len(keys)

    def position(self) -> int:
        """Bytes read so far (for a progress bar)."""
        try:
            return self._file.buffer.tell()
        except (OSError, ValueError):
            return self.size

    def __iter__(self) -> Iterator[tuple[int, dict[str, str] | str]]:
        """``(line, record)``, or ``(line, reason)`` for a row with the wrong number of fields."""
        reader = self._reader
        previous = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise UnreadableFile(f"{self.path.name}: line {previous + 1}: {exc}") from None
            line, previous = previous + 1, reader.line_num
            if not "".join(row).strip():
                continue  # blank line
            if len(row) != self._width:
                yield line, f"expected {self._width} fields as in the header, found {len(row)}"
                continue
            yield line, dict(zip(self._columns, map(str.strip, self._pick(row)), strict=True))

    def close(self) -> None:
        if hasattr(self, "_file"):
            self._file.close()

    def __enter__(self) -> CsvFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
