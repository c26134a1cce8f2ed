"""CONTRACT.md "SMS commands" and the inbound row of its HTTP table, end to end: a text POSTed to
``/sms/africastalking/inbound`` is answered 200 at once, and the reply leaves as one SMS from the
workers. Delivery reports (every AT status) are in ``test_delivery.py``, the AT wire (201, exactly
``application/json``, ``SMS._baseUrl``) in ``test_at_backend.py``.
"""

from __future__ import annotations

import itertools

import pytest

from gateway.app import create_app
from registry.models import PhoneSetting
from tests.sms.support import (
    add_guardian,
    add_institution,
    add_learner,
    add_result,
    job_runtime,
    outbox_rows,
    verify,
    work_queues,
)

PHONE = "+254712345678"
_ids = itertools.count(1)


@pytest.fixture
def texts(sms_runtime):
    """``texts(body, sender=PHONE, id=None)``: the replies (bodies) the message got, after the workers ran."""
    client = create_app(runtime=sms_runtime).test_client()

    def send(body: str, sender: str = PHONE, message_id: str | None = None) -> list[str]:
        before = len(outbox_rows(sms_runtime))
        form = {"from": sender, "to": "22384", "text": body, "date": "2026-01-09 10:00:00",
                "id": message_id or f"ATXid_c{next(_ids)}", "networkCode": "63902"}
        response = client.post("/sms/africastalking/inbound", data=form)
        assert response.status_code == 200, response.data
        work_queues(sms_runtime)
        replies = outbox_rows(sms_runtime)[before:]
        assert all(row.recipient == sender for row in replies)  # the reply goes to the sender
        return [row.body for row in replies]

    return send


@pytest.fixture
def family(sms_runtime):
    """A learner with KCSE 2024 and 2025 released and 2026 imported, and an activated, verified guardian."""
    with sms_runtime.db.transaction() as session:
        learner = add_learner(session, add_institution(session), upi="UPI0042")
        add_result(session, year=2024, mean="C+", learner=learner)
        add_result(session, year=2025, mean="B+", learner=learner)
        add_result(session, year=2026, mean="A", learner=learner, released=False)
        add_guardian(session, PHONE, learner, active=True)
        verify(session, PHONE, learner)


@pytest.mark.parametrize("exam", ["KCSE", "KCPE", "KPSEA", "KJSEA"])
def test_each_exam_answers_with_one_of_the_candidates_names_case_insensitive(sms_runtime, texts, exam):
    number = {"KCSE": "36611030002", "KCPE": "01234567890"}.get(exam, "A2024000456")
    with sms_runtime.db.transaction() as session:
        add_result(session, exam=exam, index=number, mean="B+" if exam in ("KCSE", "KCPE") else "ME")
    [reply] = texts(f"{exam.lower()} {number} wanjiku", sender="+254700000001")
    assert reply.startswith(f"{exam} 2025 {number}")


def test_the_latest_released_year_answers_and_a_trailing_year_picks_one(family, texts):
    [latest] = texts("KCSE 36611030002 Wanjiku")
    assert latest.startswith("KCSE 2025 36611030002: Mean grade B+")
    [picked] = texts("KCSE 36611030002 Wanjiku 2024")
    assert picked.startswith("KCSE 2024 36611030002: Mean grade C+")
    [unreleased] = texts("KCSE 36611030002 Wanjiku 2026")
    assert "not yet released" in unreleased


def test_the_name_may_be_left_out_only_by_an_activated_guardian(family, texts):
    [own] = texts("KCSE 36611030002")
    assert own.startswith("KCSE 2025 36611030002: Mean grade B+")
    [stranger] = texts("KCSE 36611030002", sender="+254700000002")
    assert "Mean grade" not in stranger  # the same refusal whether the number exists or not


def test_upi_lists_the_learners_of_the_senders_activated_account(family, texts):
    assert texts("upi") == ["UPI: Jane W. UPI0042"]
    [stranger] = texts("UPI", sender="+254700000003")
    assert "UPI0042" not in stranger


@pytest.mark.parametrize(("word", "starts"), [
    ("HELP", "Elimu: for results send KCSE"), ("help", "Elimu: for results send KCSE"),
    ("MSAADA", "Elimu: kwa matokeo tuma KCSE"),
])
def test_help_in_english_and_kiswahili(texts, word, starts):
    [reply] = texts(word)
    assert reply.startswith(starts)


@pytest.mark.parametrize(("stop", "start"), [("STOP", "START"), ("sitisha", "start"), ("Stop", "ANZA")])
def test_stop_and_start_are_each_acknowledged_by_one_sms(sms_runtime, texts, stop, start):
    assert len(texts(stop)) == 1
    with sms_runtime.db.session() as session:
        assert session.get(PhoneSetting, PHONE).opted_out
    assert len(texts(start)) == 1
    with sms_runtime.db.session() as session:
        assert not session.get(PhoneSetting, PHONE).opted_out


def test_anything_else_gets_one_short_help_reply_per_ten_minutes(texts):
    [reply] = texts("hello there")
    assert len(reply) <= 160 and "HELP" in reply
    assert texts("what?") == []  # not a second one within 10 minutes
    assert texts("HELP") != []  # a command is still answered
    assert texts("hello", sender="+254700000004") != []  # per number


def test_a_repeated_id_gets_200_and_no_second_reply(texts):
    assert len(texts("HELP", message_id="ATXid_same")) == 1
    assert texts("HELP", message_id="ATXid_same") == []


def test_replies_name_the_configured_ussd_code(tmp_path, sqlite_database, fake_redis):
    """ELIMU_USSD_CODE is the service code shown in texts, SMS replies too."""
    with job_runtime(tmp_path, sqlite_database, fake_redis, ussd_code="*789*12#") as runtime:
        client = create_app(runtime=runtime).test_client()
        for number, body in enumerate(["HELP", "hello", "UPI", "MSAADA"]):
            form = {"from": f"+25470000010{number}", "text": body, "id": f"ATXid_code{number}"}
            assert client.post("/sms/africastalking/inbound", data=form).status_code == 200
        work_queues(runtime)
        replies = [row.body for row in outbox_rows(runtime)]
    assert len(replies) == 4 and all("*789*12#" in reply and "*384*1234#" not in reply for reply in replies)


@pytest.mark.parametrize("wire", ["254712345678", "0712345678", "712345678", "+254 712 345 678"])
def test_a_sender_written_otherwise_is_known_and_answered_as_its_e164_number(family, sms_runtime, wire):
    """"Every phone number the project stores or compares is E.164, whatever format it arrived in":
    the activated guardian leaves the name out from a ``from`` without its ``+``, and the reply goes
    to the E.164 number."""
    client = create_app(runtime=sms_runtime).test_client()
    form = {"from": wire, "to": "22384", "text": "KCSE 36611030002", "id": f"ATXid_e{next(_ids)}"}
    assert client.post("/sms/africastalking/inbound", data=form).status_code == 200
    work_queues(sms_runtime)
    [reply] = outbox_rows(sms_runtime)
    assert reply.recipient == PHONE and reply.body.startswith("KCSE 2025 36611030002: Mean grade B+")


def test_an_index_number_imported_with_leading_zeros_is_answered_as_written(sms_runtime, texts, tmp_path):
    """results.csv "index_number kept as text (leading zeros matter)", end to end: imported and
    released with ``elimu``, the number answers with its zeros and is another number without them."""
    from tests.cli_support import run_elimu

    results = tmp_path / "results.csv"
    results.write_text("exam, year, index_number, upi, candidate_name, mean_grade, points, subjects\n"
                       "KCSE,2025,00611030002,,Jane Wambui Wanjiku,A-,80,ENG:B+;KIS:A-;MAT:A\n", encoding="utf-8")
    assert run_elimu(sms_runtime.db, tmp_path, "registry", "import-results", str(results)).exit_code == 0
    assert run_elimu(sms_runtime.db, tmp_path, "results", "release", "KCSE", "2025").exit_code == 0
    [answer] = texts("KCSE 00611030002 Wambui")
    assert answer.startswith("KCSE 2025 00611030002: Mean grade A-") and "ENG:B+" in answer
    [refused] = texts("KCSE 611030002 Wambui", sender="+254700000005")
    assert "Mean grade" not in refused
