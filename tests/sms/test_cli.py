"""``elimu announce``, ``elimu messages``, ``elimu sms reconcile``, ``elimu worker``."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from click.testing import CliRunner

from gateway.cli import Context, cli
from registry.models import Announcement, MessageKind, MessageStatus, OutboundMessage, PhoneSetting
from registry.outbox import queue_sms
from tests.sms.support import add_guardian, add_institution, add_learner, outbox_rows

P1, P2, P3 = "+254711000001", "+254711000002", "+254711000003"


@pytest.fixture
def run(sms_runtime):
    def invoke(*args: str):
        context = Context()
        context._runtime = sms_runtime
        return CliRunner().invoke(cli, list(args), obj=context)

    return invoke


@pytest.fixture
def school(sms_runtime):
    with sms_runtime.db.transaction() as session:
        institution = add_institution(session)
        jane = add_learner(session, institution, grade="Form 4")
        otieno = add_learner(session, institution, first="Otieno", grade="Form 4")
        akinyi = add_learner(session, institution, first="Akinyi", grade="Form 3")
        add_guardian(session, P1, jane, otieno)  # one phone, two learners: one message
        add_guardian(session, P2, jane)
        add_guardian(session, P3, akinyi)
        session.add(PhoneSetting(phone=P2, opted_out=True))  # sent STOP
        other = add_learner(session, add_institution(session, code="ZZ9Z", name="Other"), first="Baraka")
        add_guardian(session, "+254711000009", other)


def test_announce_reaches_every_guardian_once_except_stop(run, sms_runtime, school):
    result = run("announce", "--institution", "we4t", "--message", "Closing day is Friday 4 April.")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == ("announcement 1 to WE4T: 2 recipient(s) queued, 1 left out (sent STOP); "
                                     "1 SMS segment(s) each (GSM7)")
    rows = outbox_rows(sms_runtime)
    assert sorted(r.recipient for r in rows) == [P1, P3]
    assert {(r.kind, r.body, r.announcement_id) for r in rows} == {
        (MessageKind.ANNOUNCEMENT, "Closing day is Friday 4 April.", 1)}
    # embedded Redis: the command sent them itself (outbox backend)
    assert {r.status for r in rows} == {MessageStatus.DELIVERED}
    with sms_runtime.db.session() as session:
        [announcement] = session.query(Announcement).all()
    assert (announcement.institution_code, announcement.grade, announcement.recipients) == ("WE4T", None, 2)


def test_announce_to_one_grade(run, sms_runtime, school):
    result = run("announce", "--institution", "WE4T", "--grade", "FORM4", "--message", "Form 4 meeting")
    assert result.exit_code == 0, result.output
    assert "to WE4T Form 4: 1 recipient(s) queued, 1 left out" in result.output
    assert [r.recipient for r in outbox_rows(sms_runtime)] == [P1]
    typo = run("announce", "--institution", "WE4T", "--grade", "Form 5", "--message", "Form 5 meeting")
    assert typo.exit_code == 2 and "grade must be PP1, PP2, Grade 1-Grade 12 or Form 1-Form 4" in typo.output
    assert len(outbox_rows(sms_runtime)) == 1  # refused, not queued to nobody


def test_the_same_announcement_twice_is_refused_unless_asked_for_again(run, sms_runtime, school):
    """A command run twice by mistake would bill every parent's message twice (the 2023 results
    service double-billed 424,000 requests): the same text to the same school and grade within a
    day is refused, nothing queued, until --again."""
    first = run("announce", "--institution", "WE4T", "--message", "Closing day is Friday 4 April.")
    assert first.exit_code == 0, first.output
    twice = run("announce", "--institution", "we4t", "--message", " Closing day is Friday 4 April. ")
    assert twice.exit_code == 1
    assert "announcement 1 sent this text to WE4T at " in twice.output and "Add --again" in twice.output
    assert len(outbox_rows(sms_runtime)) == 2
    assert run("announce", "--institution", "WE4T", "--grade", "Form 4", "--message",
               "Closing day is Friday 4 April.").exit_code == 0  # one class: other phones, another announcement
    assert run("announce", "--institution", "WE4T", "--message", "Closing day is Friday 11 April.").exit_code == 0
    again = run("announce", "--institution", "WE4T", "--message", "Closing day is Friday 4 April.", "--again")
    assert again.exit_code == 0 and "announcement 4 to WE4T: 2 recipient(s)" in again.output
    with sms_runtime.db.transaction() as session:  # a day later the text may go again
        session.query(Announcement).update({"created_at": datetime(2020, 1, 1)})
    assert run("announce", "--institution", "WE4T", "--message", "Closing day is Friday 4 April.").exit_code == 0


def test_announce_maps_curly_quotes_to_gsm7(run, sms_runtime, school):
    run("announce", "--institution", "WE4T", "--message", "Parents\u2019 day \u2013 Friday")
    assert {r.body for r in outbox_rows(sms_runtime)} == {"Parents' day - Friday"}


def test_announce_counts_segments_as_the_text_will_go(run, sms_runtime, school):
    """The limit was checked before curly quotes were mapped, so one ’ made a 5-segment GSM-7
    text count as 11 UCS-2 segments and refused it; it goes out mapped, in 5."""
    message = "Parents’ meeting on Friday. " + "x" * 670
    result = run("announce", "--institution", "WE4T", "--message", message)
    assert result.exit_code == 0, result.output
    assert {r.body for r in outbox_rows(sms_runtime)} == {message.replace("’", "'")}


@pytest.mark.parametrize(("args", "code", "text"), [
    (["--institution", "NOPE", "--message", "hi"], 1, "no institution has the code 'NOPE'"),
    (["--institution", "WE4T", "--message", "   "], 2, "the message is empty"),
    (["--institution", "WE4T", "--message", "x" * 800], 2, "keep it within 5"),
])
def test_announce_refusals(run, sms_runtime, school, args, code, text):
    result = run("announce", *args)
    assert result.exit_code == code and text in result.output
    assert outbox_rows(sms_runtime) == []


def test_messages_json_per_contract(run, sms_runtime):
    with sms_runtime.db.transaction() as session:
        queue_sms(session, P1, MessageKind.OTP, "Elimu code: ******", secret="Elimu code: 111222")
        queue_sms(session, P2, MessageKind.NOTICE, "Transfer released")
    result = run("messages", "--json")
    assert result.exit_code == 0
    records = json.loads(result.output)
    assert [r["id"] for r in records] == [2, 1]
    assert all(set(r) == {"id", "to", "kind", "status", "provider_message_id", "created_at"} for r in records)
    assert (records[1]["to"], records[1]["kind"], records[1]["status"]) == (P1, "otp", "queued")
    assert datetime.fromisoformat(records[0]["created_at"]).utcoffset().total_seconds() == 0
    assert "111222" not in result.output and "******" not in result.output


def test_messages_to_one_phone_and_the_table_hides_codes(run, sms_runtime):
    with sms_runtime.db.transaction() as session:
        queue_sms(session, P1, MessageKind.OTP, "Elimu code: ******", secret="Elimu code: 111222")
        queue_sms(session, P2, MessageKind.NOTICE, "Transfer released")
    assert [r["to"] for r in json.loads(run("messages", "--to", "0711000001", "--json").output)] == [P1]
    with sms_runtime.db.transaction() as session:
        session.get(OutboundMessage, 2).failure_reason = "AT 403 InvalidPhoneNumber [/]"
        session.get(OutboundMessage, 2).body = "Transfer [bold]released[/bold]"
    result = run("messages")
    table = result.output
    assert result.exit_code == 0, table
    assert "(one-time code, not shown)" in table and "Elimu code" not in table
    # why a message failed (failure reasons hold no personal data); text shown as it is, not as markup
    assert "AT 403 InvalidPhoneNumber [/]" in table and "Transfer [bold]released[/bold]" in table
    assert run("messages", "--to", "12345").exit_code == 2


def test_reconcile_reports(run):
    result = run("sms", "reconcile")
    assert result.exit_code == 0 and "0 enqueued again" in result.output


def test_worker_needs_a_real_redis(run):
    result = run("worker", "--burst")
    assert result.exit_code == 1 and "REDIS_URL is not set" in result.output


def test_two_runs_of_one_announcement_at_once_queue_it_once(pg_database):
    """The school's row lock: the second run waits for the first to commit, then sees it."""
    from registry.services.announcements import RepeatedAnnouncement, announce
    from tests.pg_waits import Behind

    with pg_database.transaction() as session:
        school = add_institution(session)
        add_guardian(session, P1, add_learner(session, school))
    with pg_database.transaction() as first:
        announce(first, first.merge(school), "Closing day is Friday.")
        # PostgreSQL reports the second run waiting on the school's row before this one commits
        second = Behind(pg_database, lambda s: announce(s, s.merge(school), "Closing day is Friday."))
    with pytest.raises(RepeatedAnnouncement):
        second.result()
    with pg_database.session() as session:
        assert session.query(Announcement).count() == 1
