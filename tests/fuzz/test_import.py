"""Fuzz the CSV imports through the CLI: any file gets exit 0, 1 or 2 and a clear message, never a traceback,
rows already stored are never lost, and a file whose header is sound never exits 2 (unreadable) however
damaged its rows."""

from __future__ import annotations

import csv
import io
import os

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from registry.models import ExamResult, Learner
from tests.figures import report_figure

EXAMPLES = max(100, int(os.environ.get("ELIMU_FUZZ_EXAMPLES", "2500")) // 5)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

LEARNER_HEADER = ["upi", "first_name", "middle_name", "last_name", "date_of_birth", "gender", "birth_certificate_no",
                  "assessment_no", "institution_code", "institution_name", "county_code", "grade", "guardian_name",
                  "guardian_phone", "guardian_relationship"]
RESULT_HEADER = ["exam", "year", "index_number", "upi", "candidate_name", "mean_grade", "points", "subjects"]
GOOD_LEARNER = ["", "Jane", "", "Wanjiku", "2012-03-04", "F", "BC900001", "", "WE4T", "Kamukunji Primary", "047",
                "Grade 6", "Mary Wanjiku", "0712345678", "mother"]

cell = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "KCSE", "2025", "36611030002", "A-", "B+", "ENG:B+;KIS:A-", "047", "048", "000", "Grade 6",
                     "Form 5", "2012-02-30", "31/12/2012", "M", "X", "0712345678", "020 2222222", "self", "' OR 1=1--",
                     "\x00", "é", "\ufeff", "=cmd|' /C calc'!A0"]),
)


@pytest.fixture
def cli(runtime, monkeypatch):
    from gateway import cli as cli_module

    monkeypatch.setattr(cli_module.Context, "runtime", property(lambda self: runtime))
    return cli_module.cli


@pytest.fixture
def tally(request):
    codes: dict[int, int] = {}
    yield codes
    name = request.node.name.removeprefix("test_")
    report_figure("fuzz", f"import {name}: cases tried", sum(codes.values()))
    report_figure("fuzz", f"import {name}: exit codes", dict(sorted(codes.items())))


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _run(cli, tmp_path, command: str, content: bytes):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)
    result = CliRunner().invoke(cli, ["registry", command, str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output)
    assert "Traceback" not in result.output
    return result


@FUZZ
@given(rows=st.lists(st.lists(cell, min_size=15, max_size=15), max_size=4))
def test_learner_rows(cli, runtime, tmp_path, tally, rows):
    with runtime.db.session() as s:
        before = s.scalar(select(func.count()).select_from(Learner))
    result = _run(cli, tmp_path, "import-learners", _csv(LEARNER_HEADER, [GOOD_LEARNER, *rows]))
    tally[result.exit_code] = tally.get(result.exit_code, 0) + 1
    with runtime.db.session() as s:
        after = s.scalar(select(func.count()).select_from(Learner))
    assert after >= max(before, 1), "rows stored earlier (and the good row) must stay"


@FUZZ
@given(rows=st.lists(st.lists(cell, min_size=8, max_size=8), max_size=4))
def test_result_rows(cli, runtime, tmp_path, tally, rows):
    with runtime.db.session() as s:
        before = s.scalar(select(func.count()).select_from(ExamResult))
    result = _run(cli, tmp_path, "import-results", _csv(RESULT_HEADER, rows))
    tally[result.exit_code] = tally.get(result.exit_code, 0) + 1
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ExamResult)) >= before


@pytest.fixture
def small_field_limit():
    """A field limit of 64 characters (the csv module's is 131072), so that short tails can exceed it."""
    before = csv.field_size_limit(64)
    yield
    csv.field_size_limit(before)


DAMAGE = [b'"', b'""', b",", b"\n", b"\r", b"\x00", b"\xe9", b"\xc3\xa9", b"x" * 40]


@FUZZ
@given(tail=st.binary(max_size=400) | st.lists(st.sampled_from(DAMAGE), max_size=40).map(b"".join))
def test_damaged_rows_after_a_good_one(cli, runtime, tmp_path, tally, small_field_limit, tail):
    with runtime.db.session() as s:
        before = s.scalar(select(func.count()).select_from(Learner))
    result = _run(cli, tmp_path, "import-learners", _csv(LEARNER_HEADER, [GOOD_LEARNER]) + tail)
    tally[result.exit_code] = tally.get(result.exit_code, 0) + 1
    assert result.exit_code in (0, 1), (result.exit_code, result.output)
    assert result.output.splitlines()[-1].startswith("added "), result.output
    with runtime.db.session() as s:
        after = s.scalar(select(func.count()).select_from(Learner))
    assert after >= max(before, 1), "the good row must be stored"


@FUZZ
@given(content=st.binary(max_size=2000))
def test_arbitrary_bytes(cli, tmp_path, tally, content):
    result = _run(cli, tmp_path, "import-learners", content)
    tally[result.exit_code] = tally.get(result.exit_code, 0) + 1
    assert result.exit_code == 2, "a file without the contract's header is unreadable"
    assert result.output.strip(), "exit 2 needs a one-line reason"
