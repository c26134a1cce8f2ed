"""Figures that the fault and fuzz suites report (cases tried, lost, duplicated...).

Tests call ``report_figure``; the lines are printed at the end of the run by the terminal summary
hook in conftest.py, also under pytest-xdist (each worker appends to one shared file).
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path

ENV = "ELIMU_FIGURES_FILE"


def figures_file() -> Path:
    """One file per test run: the controller names it in the environment, which xdist workers inherit."""
    if not os.environ.get(ENV):
        os.environ[ENV] = os.path.join(tempfile.gettempdir(), f"elimu-figures-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl")
    return Path(os.environ[ENV])


def report_figure(suite: str, name: str, value: object) -> None:
    path = figures_file()
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"suite": suite, "name": name, "value": value}) + "\n")


def reset() -> None:
    os.environ.pop(ENV, None)
    figures_file().unlink(missing_ok=True)


def read() -> list[dict]:
    path = figures_file()
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    path.unlink(missing_ok=True)
    return rows
