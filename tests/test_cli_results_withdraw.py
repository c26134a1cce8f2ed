"""``elimu results withdraw``: a release made by mistake or too early is taken back at once."""

from __future__ import annotations

import threading

from sqlalchemy import select
from sqlalchemy.engine import make_url

from gateway.cli.times import as_utc
from registry.models import AuditEvent, ExamSeries
from registry.services.sms_commands import parse
from registry.services.sms_replies import OpenGate, prefetch_results, respond
from tests.cli_support import run_elimu
from tests.pg_waits import wait_until_blocked
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
    withdrawn, counted = done.stdout.splitlines()
    assert withdrawn == "KCSE 2025 withdrawn: its 2 results answer 'not yet released' again"
    assert counted.startswith("2 answer(s) went out since its release on ")
    assert counted.endswith(" UTC: elimu audit --series KCSE 2025 lists them")
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


def test_a_batch_answering_at_the_withdraw_is_waited_for_and_counted(pg_database, tmp_path):
    """An inbound batch reads the release once, up front (``prefetch_results``); one that read it
    before the withdraw would send grades after it. The withdraw waits for that batch to commit, so
    its answers are the last ones with grades and are in the count; the next batch is refused."""
    assert run_elimu(pg_database, tmp_path, "registry", "import-results",
                     str(write_results(tmp_path / "results.csv", ROWS))).exit_code == 0
    assert run_elimu(pg_database, tmp_path, "results", "release", "KCSE", "2025").exit_code == 0
    command = parse("KCSE 36611030002 Wanjiku")
    outcome: list[object] = []
    done = threading.Event()

    def withdraw() -> None:
        try:
            outcome.append(run_elimu(pg_database, tmp_path, "results", "withdraw", "KCSE", "2025"))
        finally:
            done.set()

    with pg_database.transaction() as batch:
        lookup = prefetch_results(batch, [command])  # the batch has read the release
        thread = threading.Thread(target=withdraw)
        thread.start()
        wait_until_blocked(pg_database, done)
        assert not done.is_set(), "the withdraw did not wait for the batch answering with grades"
        reply = respond(batch, message_id=1, phone="+254712345678", command=command, stored_language=None,
                        gate=OpenGate(), ussd_code="*384*1234#", lookup=lookup)
        assert reply is not None and reply.text.startswith("KCSE 2025 36611030002: Mean grade A-")
    thread.join(30)
    [done_result] = outcome
    assert done_result.exit_code == 0, done_result.stderr
    assert "1 answer(s) went out since its release" in done_result.stdout
    with pg_database.transaction() as later:
        reply = respond(later, message_id=2, phone="+254712345678", command=command, stored_language=None,
                        gate=OpenGate(), ussd_code="*384*1234#", lookup=prefetch_results(later, [command]))
    assert reply is not None and reply.text.startswith("KCSE 2025 results are not yet released")


def test_release_times_are_printed_in_utc_whatever_the_servers_zone(pg_database, tmp_path):
    """A PostgreSQL server whose TimeZone is Africa/Nairobi gives times back at +03:00: `results
    status`, a repeated release and a withdrawal printed them as they came, labelled UTC, three
    hours ahead."""
    assert run_elimu(pg_database, tmp_path, "registry", "import-results",
                     str(write_results(tmp_path / "results.csv", ROWS))).exit_code == 0
    assert run_elimu(pg_database, tmp_path, "results", "release", "KCSE", "2025").exit_code == 0
    with pg_database.session() as session:
        released = as_utc(session.scalar(select(ExamSeries.released_at)))
    nairobi = make_url(pg_database.url).update_query_dict({"options": "-c TimeZone=Africa/Nairobi"})
    url = nairobi.render_as_string(hide_password=False)
    shown = f"{released:%Y-%m-%d %H:%M} UTC"
    status = run_elimu(url, tmp_path, "results", "status")
    assert status.stdout.splitlines()[1].endswith(f"  {shown}"), status.stdout
    again = run_elimu(url, tmp_path, "results", "release", "KCSE", "2025")
    assert again.stdout == f"KCSE 2025 was already released on {shown}: 2 results\n"
    withdrawn = run_elimu(url, tmp_path, "results", "withdraw", "KCSE", "2025")
    assert f"since its release on {shown}: " in withdrawn.stdout, withdrawn.stdout
