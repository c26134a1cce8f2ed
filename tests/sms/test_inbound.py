"""POST /sms/africastalking/inbound: validated, stored once per AT id, answered by the workers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.app import create_app
from registry.models import InboundMessage, MessageKind, MessageStatus
from tests.sms.support import add_result, outbox_rows, work_queues
from workers import inbound as inbound_module
from workers.queues import INBOUND_QUEUE

PHONE = "+254712345678"
URL = "/sms/africastalking/inbound"


def form(**changes):
    data = {"from": PHONE, "to": "22384", "text": "HELP", "date": "2026-01-09 10:00:00", "id": "ATXid_in_1",
            "networkCode": "63902"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def client(sms_runtime):
    return create_app(runtime=sms_runtime).test_client()


def inbound_rows(runtime):
    with runtime.db.session() as session:
        return list(session.query(InboundMessage).order_by(InboundMessage.id))


@pytest.mark.parametrize(("missing", "reason"), [
    ("from", "missing field: from"), ("id", "missing field: id"), ("text", "missing field: text"),
])
def test_a_missing_field_is_400_with_the_reason(client, missing, reason):
    response = client.post(URL, data=form(**{missing: None}))
    assert response.status_code == 400
    assert response.get_data(as_text=True) == reason + "\n"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"id": "  "}, "id is empty"),
    ({"id": "x" * 101}, "id is longer than 100 characters"),
    ({"from": "Safaricom"}, "from is not a phone number"),
])
def test_malformed_fields_are_400(client, changes, reason):
    response = client.post(URL, data=form(**changes))
    assert (response.status_code, response.get_data(as_text=True)) == (400, reason + "\n")


def test_a_json_body_is_400_not_500(client):
    response = client.post(URL, json={"from": PHONE, "id": "1", "text": "HELP"})
    assert response.status_code == 400 and "missing fields: from, id, text" in response.get_data(as_text=True)


def test_stored_and_answered_200_at_once(client, sms_runtime):
    response = client.post(URL, data=form(text="KCSE 36611030002 Jane", linkId="L1"))
    assert response.status_code == 200
    [row] = inbound_rows(sms_runtime)
    assert (row.provider_id, row.sender, row.text, row.short_code, row.link_id, row.network_code) == (
        "ATXid_in_1", PHONE, "KCSE 36611030002 Jane", "22384", "L1", "63902")
    assert row.handled_at is None and row.received_at is not None
    assert outbox_rows(sms_runtime) == []  # nothing answered inside the request
    assert sms_runtime.redis.llen(f"rq:queue:{INBOUND_QUEUE}") == 1


def test_the_same_id_three_times_gets_one_reply(client, sms_runtime):
    for _ in range(3):
        assert client.post(URL, data=form()).status_code == 200
    work_queues(sms_runtime)
    assert client.post(URL, data=form()).status_code == 200  # AT retrying after we answered
    work_queues(sms_runtime)
    assert len(inbound_rows(sms_runtime)) == 1
    [reply] = outbox_rows(sms_runtime)
    assert (reply.recipient, reply.kind, reply.status) == (PHONE, MessageKind.REPLY, MessageStatus.DELIVERED)
    assert reply.body.startswith("Elimu: for results send KCSE")


def test_a_kenyan_number_in_another_form_is_stored_as_e164(client, sms_runtime):
    client.post(URL, data=form(**{"from": "254712345678"}))
    assert inbound_rows(sms_runtime)[0].sender == PHONE


def test_many_messages_are_answered_in_batches(client, sms_runtime):
    with sms_runtime.db.transaction() as session:
        add_result(session)
    for n in range(60):
        client.post(URL, data=form(id=f"in-{n}", text="KCSE 36611030002 Jane", **{"from": f"+2547110{n:05d}"}))
    work_queues(sms_runtime)
    replies = outbox_rows(sms_runtime)
    assert len(replies) == 60 and {r.status for r in replies} == {MessageStatus.DELIVERED}
    assert {r.body for r in replies} == {"KCSE 2025 36611030002: Mean grade B+ (62 pts). ENG:B+, KIS:A-, MAT:A"}
    assert all(row.command == "results" and row.handled_at for row in inbound_rows(sms_runtime))


def test_one_bad_message_does_not_sink_its_batch(client, sms_runtime, monkeypatch):
    real = inbound_module.respond

    def fragile(session, **kwargs):
        if kwargs["command"].kind == "upi":
            raise RuntimeError("boom")
        return real(session, **kwargs)

    monkeypatch.setattr(inbound_module, "respond", fragile)
    for n, text in enumerate(["HELP", "UPI", "STOP"]):
        client.post(URL, data=form(id=f"in-{n}", text=text))
    work_queues(sms_runtime)
    assert [row.command for row in inbound_rows(sms_runtime)] == ["help", "error", "stop"]
    assert len(outbox_rows(sms_runtime)) == 2


def test_a_premium_results_request_is_answered_with_its_link_id(at_runtime, fake_at):
    with at_runtime.db.transaction() as session:
        add_result(session)
    client = create_app(runtime=at_runtime).test_client()
    client.post(URL, data=form(text="KCSE 36611030002 Wanjiku", linkId="SampleLinkId123"))
    work_queues(at_runtime)
    [seen] = fake_at.requests
    assert (seen.form["linkId"], seen.form["from"], seen.form["bulkSMSMode"]) == ("SampleLinkId123", "22384", "0")
    assert "Mean grade B+" in seen.form["message"]
    [reply] = outbox_rows(at_runtime)
    assert reply.status is MessageStatus.SUBMITTED and reply.provider_message_id == "ATXid_1"


@pytest.mark.parametrize("text", ["STOP", "HELP", "START", "KCSE 36611030002 Akinyi", "KCSE 99999999999 Jane",
                                  "KCSE 3661103000 Jane", "hello"])
def test_replies_that_deliver_no_results_are_free_to_the_sender(at_runtime, fake_at, text):
    """Every reply to a premium text went back with its linkId, so the parent paid the premium rate
    for a STOP or HELP acknowledgement, a 'no such candidate' or a help reply. Now only a reply
    with the results asked for is premium; the rest go as plain SMS (bulk mode, no linkId)."""
    with at_runtime.db.transaction() as session:
        add_result(session)
    client = create_app(runtime=at_runtime).test_client()
    client.post(URL, data=form(text=text, linkId="SampleLinkId123"))
    work_queues(at_runtime)
    [seen] = fake_at.requests
    assert "linkId" not in seen.form and seen.form["bulkSMSMode"] == "1"
    [reply] = outbox_rows(at_runtime)
    assert reply.link_id is None and reply.status is MessageStatus.SUBMITTED


def test_a_database_outage_hands_the_batch_back_instead_of_dropping_it(client, sms_runtime, monkeypatch):
    from sqlalchemy.exc import OperationalError

    real, calls = inbound_module.answer, []

    def flaky(runtime, ids):
        calls.append(list(ids))
        if len(calls) == 1:
            raise OperationalError("UPDATE inbound_messages", {}, Exception("server closed the connection"))
        return real(runtime, ids)

    monkeypatch.setattr(inbound_module, "answer", flaky)
    for n, text in enumerate(["HELP", "STOP"]):
        client.post(URL, data=form(id=f"in-{n}", text=text))
    work_queues(sms_runtime)
    assert [row.command for row in inbound_rows(sms_runtime)] == ["help", "stop"]  # none marked as an error
    assert len(outbox_rows(sms_runtime)) == 2
    ids = [row.id for row in inbound_rows(sms_runtime)]
    assert calls == [ids, ids]  # handed back whole and answered later, not picked apart as if poisoned


@pytest.mark.parametrize(("raw", "expected"), [
    ("2026-01-09 10:00:00", datetime(2026, 1, 9, 10, 0, tzinfo=UTC)),  # AT's form, UTC
    ("2026-1-9 8:05:00", datetime(2026, 1, 9, 8, 5, tzinfo=UTC)),  # unpadded
    ("2026-01-09T10:00:00+03:00", datetime(2026, 1, 9, 7, 0, tzinfo=UTC)),  # ISO with an offset
    ("9 Jan 2026", None), ("", None),
    ("0001-01-01T00:00:00+01:00", None), ("9999-12-31T23:00:00-03:00", None),  # past the calendar in UTC
])
def test_the_date_of_an_inbound_sms_is_read_in_each_form(raw, expected):
    from gateway.sms.africastalking import parse_inbound

    form = {"from": "+254712345678", "id": "ATXid_9", "text": "HELP", "date": raw}
    assert parse_inbound(form).received_at == expected


def test_control_characters_never_stop_a_message_being_stored(integration_runtime):
    """PostgreSQL stores no NUL: a text or id carrying one (a gateway's GSM-7 ``@`` left as 0x00)
    would fail its INSERT on every retry AT makes for 12 hours. It is stored without it."""
    client = create_app(runtime=integration_runtime).test_client()
    response = client.post(URL, data=form(text="KCSE 36611030002 Jane\x00", id="ATXid_\x00nul\x1b"))
    assert response.status_code == 200
    [row] = inbound_rows(integration_runtime)
    assert (row.provider_id, row.text) == ("ATXid_nul", "KCSE 36611030002 Jane")
    assert client.post(URL, data=form(text="KCSE 36611030002 Jane", id="ATXid_nul")).status_code == 200
    assert len(inbound_rows(integration_runtime)) == 1  # the same message, once


# --- batches: a short one waits once for more --------------------------------------------------


def test_a_short_batch_waits_once_for_the_messages_arriving_meanwhile(client, sms_runtime, monkeypatch):
    batches, waits = [], []
    real = inbound_module.answer
    monkeypatch.setattr(inbound_module, "answer", lambda runtime, ids: batches.append(list(ids)) or real(runtime, ids))
    monkeypatch.setattr(inbound_module, "LINGER_S", 0.2)

    def meanwhile(seconds):
        waits.append(seconds)
        for n in range(3, 6):
            client.post(URL, data=form(id=f"in-{n}", text="HELP", **{"from": f"+2547110{n:05d}"}))

    monkeypatch.setattr(inbound_module, "_pause", meanwhile)
    for n in range(3):
        client.post(URL, data=form(id=f"in-{n}", text="HELP", **{"from": f"+2547110{n:05d}"}))
    work_queues(sms_runtime)
    assert waits == [0.2]  # once: the drain found nothing more after that batch
    assert [len(batch) for batch in batches] == [6]
    assert len(outbox_rows(sms_runtime)) == 6


def test_a_short_batch_does_not_wait_while_an_otp_is_queued(client, sms_runtime, monkeypatch):
    from registry.outbox import queue_sms

    monkeypatch.setattr(inbound_module, "LINGER_S", 0.2)
    monkeypatch.setattr(inbound_module, "_pause", lambda seconds: pytest.fail("waited with an OTP queued"))
    with sms_runtime.db.transaction() as session:
        queue_sms(session, "+254700000001", MessageKind.OTP, "code ******", secret="code 123456")
    client.post(URL, data=form())
    assert inbound_module.drain(sms_runtime, 0) == 1
    assert [row.command for row in inbound_rows(sms_runtime)] == ["help"]


# --- replies written claimed --------------------------------------------------------------------


def test_replies_are_written_claimed_and_sent_by_the_drain(client, sms_runtime):
    client.post(URL, data=form())
    [row] = inbound_rows(sms_runtime)
    claimed = inbound_module.answer(sms_runtime, [row.id])
    [reply] = outbox_rows(sms_runtime)
    assert (reply.status, reply.attempts, reply.provider) == (MessageStatus.SUBMITTED, 1, "outbox")
    assert reply.submitted_at is not None and reply.accepted_at is None  # the reconciler's lease covers it
    assert [(c.id, c.recipient, c.kind, c.priority) for c in claimed] == [(reply.id, PHONE, "reply", "sms-reply")]
    assert sms_runtime.redis.llen("rq:queue:sms-reply") == 0  # no job: the drain sends it itself
    inbound_module.send_replies(sms_runtime, claimed)
    assert outbox_rows(sms_runtime)[0].status is MessageStatus.DELIVERED


def test_replies_the_backend_failed_on_go_back_to_queued_with_jobs(client, sms_runtime, monkeypatch):
    from workers.context import backend_of

    client.post(URL, data=form())
    claimed = inbound_module.answer(sms_runtime, [inbound_rows(sms_runtime)[0].id])

    def broken(messages):
        raise ConnectionError("provider unreachable")

    backend = backend_of(sms_runtime)
    working = backend.send
    monkeypatch.setattr(backend, "send", broken)
    inbound_module.send_replies(sms_runtime, claimed)
    [reply] = outbox_rows(sms_runtime)
    assert reply.status is MessageStatus.QUEUED
    assert sms_runtime.redis.llen("rq:queue:sms-reply") == 1
    monkeypatch.setattr(backend, "send", working)
    work_queues(sms_runtime)
    assert outbox_rows(sms_runtime)[0].status is MessageStatus.DELIVERED


def test_a_stop_keeps_the_announcements_still_queued_for_the_phone_from_going_out(at_runtime, fake_at):
    """The drain answers STOP before the bulk queue's turn: the batch a bulk job claims leaves the
    phone's ended row out, and that row's own job sends nothing."""
    from registry.outbox import OPTED_OUT, queue_many
    from workers.inbound import receive

    phones = [PHONE, "+254722000111", "+254733000222"]
    with at_runtime.db.transaction() as session:
        queue_many(session, [(p, MessageKind.ANNOUNCEMENT, "Term dates", None) for p in phones], announcement_id=1)
    receive(at_runtime, provider_id="ATXid_stop", sender=PHONE, text="STOP")
    work_queues(at_runtime)
    assert [(seen.recipients, seen.form["message"][:8]) for seen in fake_at.requests] == [
        ([PHONE], "You will"), (phones[1:], "Term dat")]
    rows = {row.recipient: row for row in outbox_rows(at_runtime) if row.kind == MessageKind.ANNOUNCEMENT}
    assert (rows[PHONE].status, rows[PHONE].failure_reason) == (MessageStatus.FAILED, OPTED_OUT)
