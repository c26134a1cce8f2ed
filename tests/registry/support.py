"""Helpers for registry tests: CSV writers, learner rows, database snapshots."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import select

from registry.db import Database
from registry.importer import LEARNER_COLUMNS, RESULT_COLUMNS, CsvFile, import_learners, import_results
from registry.models import Base

BASE_ROW = {
    "upi": "", "first_name": "Jane", "middle_name": "Wambui", "last_name": "Kamau", "date_of_birth": "2014-03-04",
    "gender": "F", "birth_certificate_no": "5102347", "assessment_no": "", "institution_code": "NB7K",
    "institution_name": "Kilimani Primary", "county_code": "047", "grade": "Grade 6", "guardian_name": "Mary Kamau",
    "guardian_phone": "0712345678", "guardian_relationship": "mother",
}  # fmt: skip


def learner(**changes: str) -> dict[str, str]:
    return {**BASE_ROW, **changes}


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_learners(path: Path, rows: list[dict[str, str]]) -> Path:
    return write_csv(path, LEARNER_COLUMNS, rows)


def write_results(path: Path, rows: list[dict[str, str]]) -> Path:
    return write_csv(path, RESULT_COLUMNS, rows)


def generate_learners(path: Path, count: int) -> Path:
    """``count`` learners from three counties; every 10th has a second guardian, every 7th an
    imported UPI, the rest a blank UPI (the registry assigns one); one phone has three children."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(LEARNER_COLUMNS)
        for i in range(count):
            school = i % 40
            base = [
                f"IMP{i:07d}" if i % 7 == 0 else "", f"Learner{i}", "Wanjiru" if i % 3 else "", f"Family{i % 997}",
                f"{2008 + i % 12}-{1 + i % 12:02d}-{1 + i % 28:02d}", "MF"[i % 2], f"BC{i:08d}",
                f"30{i:08d}" if i % 2 else "", f"S{school:03d}", f"School number {school}", f"{1 + school % 47:03d}",
                f"Grade {1 + i % 12}",
            ]  # fmt: skip
            phone = "0712345678" if i < 3 else f"07{20000000 + i:08d}"
            writer.writerow([*base, f"Parent {i}", phone, "mother"])
            if i % 10 == 0:
                writer.writerow([*base, f"Second parent {i}", f"+2541{10000000 + i:08d}", "father"])
    return path


def run_learners(database: Database, path: Path, **kwargs):
    """Import a learners file; returns (report, [(line, reason), ...])."""
    rejected: list[tuple[int, str]] = []
    with CsvFile(path, LEARNER_COLUMNS) as source:
        report = import_learners(database, source, on_reject=lambda line, why: rejected.append((line, why)), **kwargs)
    return report, rejected


def run_results(database: Database, path: Path, **kwargs):
    rejected: list[tuple[int, str]] = []
    with CsvFile(path, RESULT_COLUMNS) as source:
        report = import_results(database, source, on_reject=lambda line, why: rejected.append((line, why)), **kwargs)
    return report, rejected


def snapshot(database: Database) -> dict[str, list[tuple]]:
    """Every row of every table (timestamps included), to show that nothing changed."""
    with database.engine.connect() as conn:
        return {
            table.name: sorted(tuple(row) for row in conn.execute(select(table)))
            for table in Base.metadata.sorted_tables
        }
