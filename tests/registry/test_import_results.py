"""results.csv import: grades kept exactly, index numbers as text, links to learners, rejected lines."""

from __future__ import annotations

import re
import threading
from unittest.mock import patch

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from registry.importer import RESULT_COLUMNS, CsvFile, ImportReport, import_results
from registry.importer.results import ResultWriter
from registry.models import ExamResult, ExamSeries
from registry.services.results import release_results

from .support import learner, run_learners, run_results, snapshot, write_learners, write_results


def result(**changes: str) -> dict[str, str]:
    base = {"exam": "KCSE", "year": "2025", "index_number": "03611030002", "upi": "", "candidate_name": "Jane Kamau",
            "mean_grade": "A-", "points": "78", "subjects": "ENG:B+;KIS:A-;MAT:A"}  # fmt: skip
    return {**base, **changes}


def test_results_import_keeps_grades_and_index_numbers_exactly(database, tmp_path):
    run_learners(database, write_learners(tmp_path / "l.csv", [learner(upi="KE77XZ")]))
    path = write_results(
        tmp_path / "r.csv",
        [
            result(upi="ke77xz"),
            result(index_number="03611030003", mean_grade="B+", subjects="ENG:B-;KIS:C+;MAT:D-", upi=""),
            result(exam="kjsea", index_number="3047190112", mean_grade="EE1", points="72", subjects="ENG:EE1;MAT:EE2"),
            result(exam="KPSEA", index_number="3047190113", mean_grade="ME", points="", subjects=""),
            result(year="2024", mean_grade="C", points="42", subjects="ENG:C"),
        ],
    )
    report, rejected = run_results(database, path)
    assert rejected == [] and report.added == 5
    with database.session() as session:
        rows = {(r.series.exam, r.series.year, r.index_number): r for r in session.scalars(select(ExamResult))}
        assert not any(s.released for s in session.scalars(select(ExamSeries)))
        jane = rows[("KCSE", 2025, "03611030002")]
        assert (jane.mean_grade, jane.points, jane.subjects) == ("A-", 78, "ENG:B+;KIS:A-;MAT:A")
        assert jane.upi == "KE77XZ" and jane.learner is not None and jane.learner.first_name == "Jane"
        unlinked = rows[("KCSE", 2025, "03611030003")]
        assert unlinked.upi is None and unlinked.learner_id is None
        assert rows[("KJSEA", 2025, "3047190112")].mean_grade == "EE1"
        assert rows[("KPSEA", 2025, "3047190113")].points is None
        assert rows[("KCSE", 2024, "03611030002")].mean_grade == "C"

    before = snapshot(database)
    again, _ = run_results(database, path)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 5)
    assert snapshot(database) == before


def test_bad_result_rows_are_named_by_line(database, tmp_path):
    path = write_results(
        tmp_path / "r.csv",
        [
            result(),  # 2 good
            result(index_number="3661103000", mean_grade="a-"),  # 3
            result(exam="KCPE", year="2024"),  # 4: KCPE ended in 2023
            result(exam="KJSEA", index_number="3047190112", mean_grade="B+"),  # 5
            result(exam="GCSE"),  # 6
            result(index_number="03611030009", subjects="ENG:B+;ENG:A"),  # 7
            result(index_number="03611030010", candidate_name="", points="99"),  # 8
            result(mean_grade="B"),  # 9: same candidate as line 2, different grade
            result(),  # 10: exact repeat of line 2
        ],
    )
    report, rejected = run_results(database, path)
    reasons = dict(rejected)
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9]
    assert "index number must be 11 digits" in reasons[3] and "mean_grade 'a-' is not a KCSE grade" in reasons[3]
    assert "KCPE was last sat in 2023" in reasons[4]
    assert "not a KJSEA grade" in reasons[5]
    assert "exam must be one of KCSE, KCPE, KPSEA, KJSEA" in reasons[6]
    assert "subject ENG appears twice" in reasons[7]
    assert "candidate_name is required" in reasons[8] and "above the KCSE maximum of 84" in reasons[8]
    assert reasons[9] == "differs from line 2 (same exam, year and index_number): mean_grade"
    assert (report.added, report.unchanged, report.rejected) == (1, 1, 7)


def test_rows_of_one_candidate_that_disagree_are_rejected_however_far_apart(database, tmp_path):
    """Batches of 2 rows, written by two writers on PostgreSQL: the later row never overwrites the
    first (which one won depended on batch boundaries and commit order), and importing again
    changes nothing."""
    rows = [result(index_number=f"036110300{i:02d}") for i in range(10)]
    rows += [result(mean_grade="B+"), result(subjects="ENG:B+;KIS:A-;MAT:A"), result(points="", candidate_name="J K")]
    path = write_results(tmp_path / "r.csv", rows)
    for attempt in range(2):
        report, rejected = run_results(database, path, batch_size=2, writers=2)
        assert rejected == [
            (12, "differs from line 4 (same exam, year and index_number): mean_grade"),
            (14, "differs from line 4 (same exam, year and index_number): candidate_name, points"),
        ]
        assert (report.added, report.updated, report.unchanged) == ((10, 0, 1) if attempt == 0 else (0, 0, 11))
    with database.session() as session:
        stored = session.scalars(select(ExamResult).where(ExamResult.index_number == "03611030002")).one()
        assert (stored.mean_grade, stored.points, stored.candidate_name) == ("A-", 78, "Jane Kamau")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("year", "２０２５", "year must be four digits (YYYY), not '２０２５'"),
        ("year", "²⁰²⁵", "year must be four digits (YYYY), not '²⁰²⁵'"),
        ("points", "７８", "points must be a whole number, not '７８'"),
        ("points", "²", "points must be a whole number, not '²'"),
    ],
)
def test_years_and_points_take_ascii_digits_only(sqlite_database, tmp_path, field, value, reason):
    """Other scripts' digits were read as numbers, and ``²`` gave Python's own int() message."""
    _, rejected = run_results(sqlite_database, write_results(tmp_path / "r.csv", [result(**{field: value})]))
    assert rejected == [(2, reason)]


def test_an_index_number_a_spreadsheet_turned_into_a_number_is_rejected_with_the_cause(sqlite_database, tmp_path):
    """A whole county's index numbers start with 0; the reason says why they look wrong (never repaired)."""
    hint = " (a spreadsheet saved it as a number? keep the column as text)"
    numbers = ["1301012091", "1.93010E+10", "19301012001.0", "0361103000", "123", "3047190112"]
    rows = [result(index_number=n) for n in numbers[:-1]] + [result(exam="KJSEA", index_number=numbers[-1],
                                                                       mean_grade="EE1", points="", subjects="")]
    report, rejected = run_results(sqlite_database, write_results(tmp_path / "r.csv", rows))
    assert rejected == [
        (2, "KCSE index number must be 11 digits, not '1301012091'" + hint),
        (3, "KCSE index number must be 11 digits, not '1.93010E+10'" + hint),
        (4, "KCSE index number must be 11 digits, not '19301012001.0'" + hint),
        (5, "KCSE index number must be 11 digits, not '0361103000'"),
        (6, "KCSE index number must be 11 digits, not '123'"),
    ]
    assert report.added == 1


def test_a_correction_is_an_update(database, tmp_path):
    run_results(database, write_results(tmp_path / "a.csv", [result(), result(index_number="03611030003")]))
    report, _ = run_results(database, write_results(tmp_path / "b.csv", [result(mean_grade="A"), result(index_number="03611030003")]))
    assert (report.updated, report.unchanged) == (1, 1)
    with database.session() as session:
        assert session.scalars(select(ExamResult.mean_grade).where(ExamResult.index_number == "03611030002")).one() == "A"


def test_a_correction_of_a_released_result_is_told_with_what_it_was(database, tmp_path):
    """Parents may already have the released grade: the operator sees each change and where to find
    who was sent it; corrections before release, and links, are routine and pass quietly."""
    first = [result(), result(index_number="03611030003"), result(exam="KJSEA", index_number="3047190112",
                                                                   mean_grade="ME1", points="40", subjects="")]
    run_results(database, write_results(tmp_path / "a.csv", first))
    with database.transaction() as session:
        release_results(session, "KCSE", 2025)
    fixed = [result(mean_grade="B+", points="70"), result(index_number="03611030003", subjects=""),
             result(exam="KJSEA", index_number="3047190112", mean_grade="ME2", points="40", subjects="")]
    warnings: list[tuple[int, str]] = []
    report, rejected = run_results(database, write_results(tmp_path / "b.csv", fixed), batch_size=1,
                                   on_warning=lambda line, text: warnings.append((line, text)))  # fmt: skip
    assert rejected == [] and report.updated == 3 and report.warnings == 2
    assert warnings == [
        (2, "corrects released KCSE 2025 03611030002: mean_grade 'A-' -> 'B+', points 78 -> 70; "
            "replies already sent: elimu audit --index 03611030002"),
        (3, "corrects released KCSE 2025 03611030003: subjects 'ENG:B+;KIS:A-;MAT:A' -> ''; "
            "replies already sent: elimu audit --index 03611030003"),
    ]  # fmt: skip
    warnings.clear()
    again, _ = run_results(database, write_results(tmp_path / "b.csv", fixed),
                           on_warning=lambda line, text: warnings.append((line, text)))  # fmt: skip
    assert again.unchanged == 3 and warnings == []


def test_a_upi_the_registry_does_not_know_is_rejected(database, tmp_path):
    run_learners(database, write_learners(tmp_path / "l.csv", [learner(upi="KE77XZ")]))
    path = write_results(
        tmp_path / "r.csv",
        [
            result(upi="nosuch"),  # 2
            result(upi="KE77XZ"),  # 3: the same candidate with a known UPI: the first accepted row
            result(upi="NOSUCH"),  # 4
            result(index_number="03611030003", upi="NOSUCH"),  # 5
            result(index_number="03611030003", upi="NOSUCH"),  # 6: a repeat of a rejected row is rejected too
            result(index_number="03611030004"),  # 7: no UPI, no link
        ],
    )
    report, rejected = run_results(database, path)
    unknown = "unknown UPI NOSUCH (import learners first)"
    assert rejected == [(2, unknown), (4, unknown), (5, unknown), (6, unknown)]
    assert (report.added, report.rejected) == (2, 4)
    with database.session() as session:
        stored = session.scalars(select(ExamResult)).all()
        links = {r.index_number: (r.upi, r.learner_id is not None) for r in stored}
    assert links == {"03611030002": ("KE77XZ", True), "03611030004": (None, False)}


def test_a_batchs_upis_are_looked_up_in_one_query(database, tmp_path):
    upis = [f"KE{i:04d}" for i in range(40)]
    learners = [learner(upi=u, birth_certificate_no=u) for u in upis]
    run_learners(database, write_learners(tmp_path / "l.csv", learners))
    rows = [result(index_number=f"036110{i:05d}", upi=u if i % 3 else "NOSUCH") for i, u in enumerate(upis)]
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", seen)
    try:
        report, rejected = run_results(database, write_results(tmp_path / "r.csv", rows), batch_size=100)
    finally:
        event.remove(database.engine, "before_cursor_execute", seen)
    assert (report.added, report.rejected) == (26, 14) and len(rejected) == 14
    assert sum(bool(re.search(r'FROM "?learners\b', s)) for s in statements) == 1


def test_a_correction_without_the_upi_keeps_the_result_linked(database, tmp_path):
    """A second file that leaves the upi blank (a KNEC file joined with the registry's once) says
    nothing of the learner: the link the first import made stays, and the guardian still sees it."""
    run_learners(database, write_learners(tmp_path / "l.csv", [learner(upi="KE77XZ")]))
    run_results(database, write_results(tmp_path / "a.csv", [result(upi="KE77XZ")]))
    report, _ = run_results(database, write_results(tmp_path / "b.csv", [result(mean_grade="A")]))
    assert report.updated == 1
    again, _ = run_results(database, write_results(tmp_path / "c.csv", [result(mean_grade="A")]))
    assert again.unchanged == 1
    with database.session() as session:
        stored = session.scalars(select(ExamResult)).one()
    assert (stored.mean_grade, stored.upi, stored.learner_id is not None) == ("A", "KE77XZ", True)


def test_an_import_stopped_early_counts_every_batch_written_and_names_the_first_line_not(database, tmp_path):
    """Two writers: the batch of lines 1002-2001 commits, then the one of lines 2-1001 fails. The
    report counts the batch written (its rejected line told) and says the import stopped at line 2;
    the error is raised as it came."""
    rows = [result(index_number=f"036110{i:05d}", candidate_name=f"Candidate {i}") for i in range(2000)]
    rows[1500]["mean_grade"] = "Q"  # line 1502
    path = write_results(tmp_path / "r.csv", rows)
    later_written = threading.Event()
    real_write, real_committed = ResultWriter.write, ResultWriter.committed

    def write(self, session, batch):
        if batch[0].line == 2:
            assert later_written.wait(60)
            raise OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))
        return real_write(self, session, batch)

    def committed(self):
        real_committed(self)
        later_written.set()

    report, rejected = ImportReport(), []
    with (
        CsvFile(path, RESULT_COLUMNS) as source,
        patch.object(ResultWriter, "write", write),
        patch.object(ResultWriter, "committed", committed),
        pytest.raises(OperationalError, match="server closed"),
    ):
        import_results(database, source, writers=2, report=report, on_reject=lambda *r: rejected.append(r))
    assert (report.added, report.rejected, report.stopped_at) == (999, 1, 2)
    assert rejected == [(1502, "mean_grade 'Q' is not a KCSE grade (A A- B+ B B- C+ C C- D+ D D- E X Y W P)")]
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(ExamResult)) == 999
    again, _ = run_results(database, path)
    assert (again.added, again.unchanged, again.rejected, again.stopped_at) == (1000, 999, 1, None)
