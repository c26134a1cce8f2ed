"""``elimu results withdraw``: a release made by mistake or too early is taken back at once."""

from __future__ import annotations

from registry.models import AuditEvent, ExamSeries
from registry.services.sms_commands import parse
from registry.services.sms_replies import OpenGate, respond
from tests.cli_support import run_elimu
from tests.registry.support import write_results

ROWS = [
    {"exam": "KCSE", "year": "2025", "index_number": "36611030002", "upi": "", "candidate_name": "Jane Wanjiku Kamau",
     "mean_grade": "A-", "points": "78", "subjects": "ENG:B+;KIS:A-"},
    {"exam": "KCSE", "year": "2025", "index_number": "36611030003", "upi": "", "candidate_name": "Peter Otieno",
     "mean_grade": "B", "points": "", "subjects": ""},
]  # fmt: skip


def ask(database, text: str, message_id: int) -> str:
    with database.transaction() as session:
        return respond(session, message_id=message_id, phone="+254712345678", command=parse(text),
                       stored_language=None, gate=OpenGate(), ussd_code="*384*1234#").text


def test_a_withdrawn_release_answers_not_yet_released_again(database, tmp_path):
    assert run_elimu(database, tmp_path, "registry", "import-results",
                     str(write_results(tmp_path / "results.csv", ROWS))).exit_code == 0
    assert run_elimu(database, tmp_path, "results", "release", "KCSE", "2025").exit_code == 0
    assert ask(database, "KCSE 36611030002 Wanjiku", 1).startswith("KCSE 2025 36611030002: Mean grade A-")
    assert ask(database, "KCSE 36611030003 Otieno", 2).startswith("KCSE 2025 36611030003: Mean grade B")
    with database.transaction() as session:  # an answer of another series is not counted
        session.add(AuditEvent(phone="+254712345678", action="results_replied", channel="sms", reference="9",
                               detail="KCPE 2023 36611030002"))

    done = run_elimu(database, tmp_path, "results", "withdraw", "kcse", "2025")

    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith("KCSE 2025 withdrawn: its 2 results answer 'not yet released' again; "
                                  "2 answer(s) went out since its release on ")
    with database.session() as session:
        assert session.query(ExamSeries).one().released_at is None
    not_out = ask(database, "KCSE 36611030002 Wanjiku", 3)
    assert not_out == "KCSE 2025 results are not yet released. Please try again after the official release."
    assert not_out == ask(database, "KCSE 36611039999 Nobody", 4)  # the same answer whether the number is real
    status = run_elimu(database, tmp_path, "results", "status")
    assert status.stdout.splitlines()[1].endswith("not released")

    again = run_elimu(database, tmp_path, "results", "withdraw", "KCSE", "2025")
    assert (again.exit_code, again.stdout) == (0, "KCSE 2025 was not released: nothing to withdraw (2 results)\n")
    assert run_elimu(database, tmp_path, "results", "release", "KCSE", "2025").stdout == (
        "KCSE 2025 released: 2 results now answer\n")
    assert ask(database, "KCSE 36611030002 Wanjiku", 5).startswith("KCSE 2025 36611030002: Mean grade A-")


def test_withdrawing_what_was_never_imported_or_no_exam_is_refused(database, tmp_path):
    unknown = run_elimu(database, tmp_path, "results", "withdraw", "KJSEA", "2025")
    assert (unknown.exit_code, unknown.stderr) == (1, "Error: no KJSEA 2025 results have been imported\n")
    wrong = run_elimu(database, tmp_path, "results", "withdraw", "GCSE", "2025")
    assert wrong.exit_code == 2 and "exam must be one of" in wrong.stderr
