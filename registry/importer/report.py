"""What an import did: counts of rows, and the errors that stop or reject."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class UnreadableFile(Exception):
    """The file cannot be imported at all (missing, not UTF-8, header columns missing): exit 2."""


class RowRejected(ValueError):
    """One row cannot be imported; the message says why (the line number travels separately)."""


class Problems:
    """Collects every problem in one row: ``check(fn, *args)`` returns ``fn``'s value or None."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            self.reasons.append(str(exc))
            return None

    def raise_any(self) -> None:
        if self.reasons:
            raise RowRejected("; ".join(self.reasons))


class Outcome(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


RejectHandler = Callable[[int, str], None]
WarnHandler = Callable[[int, str], None]
ProgressHandler = Callable[[int], None]


@dataclass
class ImportReport:
    """Counts of rows (a row is one learner-guardian pair, or one candidate's result)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    warnings: int = 0  # accepted rows with something the clerk should know (not in the summary)
    seconds: float = 0.0
    stopped_at: int | None = None  # an import stopped early: the first line not known to be written
    # an import stopped again while it wrote its last batches: the lines of those it left being
    # written, which commit whole or not at all, after the counts were taken
    unsure: list[tuple[int, int]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.added + self.updated + self.unchanged + self.rejected

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    def summary(self) -> str:
        return f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, rejected {self.rejected}"

    def stopped(self) -> str:
        """What an import that stopped early left (``stopped_at`` set), and what to do."""
        unsure = ", ".join(f"{first}-{last}" for first, last in self.unsure)
        return (
            f"the import stopped at line {self.stopped_at}: that line and those after it were not all imported; "
            "import the file again once the error is put right (rows already imported count as unchanged)"
            + (f"; lines {unsure} were being written when it was stopped again and may or may not be stored"
               if unsure else "")
        )
