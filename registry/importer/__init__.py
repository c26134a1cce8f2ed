"""CSV import of learners and results (formats in the contract): streaming, batched, idempotent."""

from .learners import COLUMNS as LEARNER_COLUMNS
from .learners import import_learners
from .report import ImportReport, Outcome, RowRejected, UnreadableFile
from .results import COLUMNS as RESULT_COLUMNS
from .results import import_results
from .source import CsvFile

__all__ = [
    "LEARNER_COLUMNS",
    "RESULT_COLUMNS",
    "CsvFile",
    "ImportReport",
    "Outcome",
    "RowRejected",
    "UnreadableFile",
    "import_learners",
    "import_results",
]
