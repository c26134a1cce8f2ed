"""Figures that the fault and fuzz suites report (cases tried, lost, duplicated...).

Tests call ``report_figure``; the lines are printed at the end of the run by the terminal summary
hook in conftest.py, also under pytest-xdist (each worker appends to one shared file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FIGURES_FILE = Path(os.environ.get("ELIMU_FIGURES_FILE", Path(__file__).resolve().parent.parent
                                   / ".pytest_cache" / "elimu-figures.jsonl"))


def report_figure(suite: str, name: str, value: object) -> None:
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES_FILE.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"suite": suite, "name": name, "value": value}) + "\n")


def reset() -> None:
    FIGURES_FILE.unlink(missing_ok=True)


def read() -> list[dict]:
    if not FIGURES_FILE.exists():
        return []
    return [json.loads(line) for line in FIGURES_FILE.read_text(encoding="utf-8").splitlines() if line]
