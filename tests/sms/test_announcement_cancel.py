"""``elimu sms cancel-announcement``: an announcement sent by mistake is stopped; what a worker has
already taken is left to arrive, and nothing else of the outbox is touched."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from gateway.cli import Context, cli
from registry.models import Announcement, MessageKind, MessageStatus, OutboundMessage, utcnow
from registry.outbox import CANCELLED, LEASE, queue_many, queue_sms
from registry.services import announcements
from registry.services.announcements import UnknownAnnouncement, cancel_announcement
from tests.sms.support import outbox_rows, work_queues
from workers.reconcile import reconcile
from workers.sending import claim as worker_claim

PHONES = [f"+2547110000{n:02d}" for n in range(12)]
OTHER = "+254799999999"


def _announcement(database, phones=PHONES, body="Closing day is Friday") -> int:
    """An announcement whose messages wait in the outbox (their jobs queued, not yet worked)."""
    with database.transaction() as session:
        announcement = Announcement(institution_code="WE4T", grade=None, body=body, recipients=len(phones))
        session.add(announcement)
        session.flush()
        queue_many(session, [(p, MessageKind.ANNOUNCEMENT, body, None) for p in phones],
                   announcement_id=announcement.id)
        return announcement.id


def _set_status(database, recipient: str, status: MessageStatus) -> None:
    with database.transaction() as session:
        row = session.query(OutboundMessage).filter_by(recipient=recipient).one()
        row.status = status


@pytest.fixture
def run(at_runtime):
    def invoke(*args: str, input: str | None = None):
        context = Context()
        context._runtime = at_runtime
        return CliRunner().invoke(cli, list(args), obj=context, input=input)

    return invoke


def test_a_cancelled_announcement_sends_only_what_a_worker_had_taken(run, at_runtime, fake_at):
    announcement_id = _announcement(at_runtime.db)
    with at_runtime.db.transaction() as session:  # another message in the outbox: not touched
        queue_sms(session, OTHER, MessageKind.REPLY, "A reply")
    _set_status(at_runtime.db, PHONES[0], MessageStatus.DELIVERED)
    _set_status(at_runtime.db, PHONES[1], MessageStatus.SUBMITTED)  # a worker is handing it to AT

    result = run("sms", "cancel-announcement", str(announcement_id), "--yes")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"announcement {announcement_id} to WE4T, made ")
    assert lines[0].endswith("UTC, 12 recipient(s): 'Closing day is Friday'")
    assert lines[1] == "10 waiting, 1 taken by a worker, 1 sent or ended, 0 cancelled"
    assert lines[2] == (f"announcement {announcement_id}: 10 message(s) cancelled; 1 already taken by a worker "
                        "(they may still arrive); 1 sent or ended before")
    rows = {row.recipient: row for row in outbox_rows(at_runtime)}
    assert {p for p, row in rows.items() if row.failure_reason == CANCELLED} == set(PHONES[2:])
    assert {rows[p].status for p in PHONES[2:]} == {MessageStatus.FAILED}
    assert all(rows[p].next_attempt_at is None for p in PHONES[2:])
    assert (rows[PHONES[0]].status, rows[PHONES[1]].status) == (MessageStatus.DELIVERED, MessageStatus.SUBMITTED)

    work_queues(at_runtime)  # the cancelled messages' jobs still run, and find nothing to send
    assert [seen.recipients for seen in fake_at.requests] == [[OTHER]]
    assert outbox_rows(at_runtime)[-1].provider_message_id is not None  # the reply went, accepted by AT


def test_it_asks_first_and_a_no_changes_nothing(run, at_runtime):
    announcement_id = _announcement(at_runtime.db)
    refused = run("sms", "cancel-announcement", str(announcement_id), input="n\n")
    assert refused.exit_code == 1 and "Cancel the 12 waiting? [y/N]" in refused.output
    assert {row.status for row in outbox_rows(at_runtime)} == {MessageStatus.QUEUED}
    agreed = run("sms", "cancel-announcement", str(announcement_id), input="y\n")
    assert agreed.exit_code == 0, agreed.output
    assert "12 message(s) cancelled" in agreed.output
    assert {row.failure_reason for row in outbox_rows(at_runtime)} == {CANCELLED}


def test_an_unknown_id_and_a_finished_announcement_are_told_so(run, at_runtime):
    unknown = run("sms", "cancel-announcement", "99", "--yes")
    assert unknown.exit_code == 1 and "Error: no announcement has the id 99" in unknown.output
    zero = run("sms", "cancel-announcement", "0", "--yes")
    assert zero.exit_code == 2  # not an id at all
    announcement_id = _announcement(at_runtime.db, phones=PHONES[:2])
    assert "2 message(s) cancelled" in run("sms", "cancel-announcement", str(announcement_id), "--yes").output
    again = run("sms", "cancel-announcement", str(announcement_id), "--yes")
    assert again.exit_code == 0
    assert again.output.splitlines()[1:] == ["0 waiting, 0 taken by a worker, 0 sent or ended, 2 cancelled",
                                             "already cancelled"]
    finished = _announcement(at_runtime.db, phones=PHONES[2:3])
    _set_status(at_runtime.db, PHONES[2], MessageStatus.DELIVERED)
    done = run("sms", "cancel-announcement", str(finished))
    assert done.exit_code == 0 and done.output.splitlines()[1:] == [
        "0 waiting, 0 taken by a worker, 1 sent or ended, 0 cancelled", "nothing waiting to cancel"]
    with at_runtime.db.session() as session:  # nothing to stop: not marked cancelled
        assert session.get(Announcement, finished).cancelled_at is None


def test_cancelling_in_chunks_reaches_every_waiting_message(database, monkeypatch):
    monkeypatch.setattr(announcements, "CANCEL_CHUNK", 5)
    announcement_id = _announcement(database)
    other = _announcement(database, phones=[OTHER], body="Another school's")
    result = cancel_announcement(database, announcement_id)
    assert (result.cancelled, result.in_flight, result.done, result.cancelled_before) == (12, 0, 0, 0)
    with database.session() as session:
        statuses = dict(session.query(OutboundMessage.announcement_id, OutboundMessage.status)
                        .filter(OutboundMessage.announcement_id == other))
    assert statuses == {other: MessageStatus.QUEUED}
    with pytest.raises(UnknownAnnouncement):
        cancel_announcement(database, 999)


def test_a_message_a_worker_is_claiming_is_skipped_not_waited_for(pg_database):
    """On PostgreSQL a worker's claim holds its rows' locks until it commits. The cancel skips them
    (it would otherwise wait, or deadlock with a claim holding one row and wanting another), then
    looks again once the claim is over: the claimed row is in flight, the rest cancelled."""
    announcement_id = _announcement(pg_database)
    with pg_database.session() as session:
        claimed_id = session.query(OutboundMessage.id).filter_by(recipient=PHONES[3]).scalar()
    claim = pg_database.engine.connect()
    transaction = claim.begin()
    claim.execute(text("SELECT id FROM outbound_messages WHERE id = :id FOR UPDATE"), {"id": claimed_id})
    pauses: list[float] = []

    def claim_commits(seconds: float) -> None:  # the cancel's pause: the worker's claim ends now
        pauses.append(seconds)
        claim.execute(text("UPDATE outbound_messages SET status = 'submitted' WHERE id = :id"), {"id": claimed_id})
        transaction.commit()

    outcome: dict[str, object] = {}
    worker = threading.Thread(target=lambda: outcome.update(
        result=cancel_announcement(pg_database, announcement_id, sleep=claim_commits)))
    worker.start()
    worker.join(30)
    try:
        assert not worker.is_alive(), "the cancel waited for the claimed row's lock"
    finally:
        if transaction.is_active:
            transaction.rollback()
        claim.close()
    result = outcome["result"]
    assert len(pauses) == 1
    assert (result.cancelled, result.in_flight, result.done) == (11, 1, 0)
    with pg_database.session() as session:
        row = session.get(OutboundMessage, claimed_id)
    assert (row.status, row.failure_reason) == (MessageStatus.SUBMITTED, None)


def test_sms_status_counts_the_cancelled_apart_from_the_failed(run, at_runtime):
    announcement_id = _announcement(at_runtime.db)
    _set_status(at_runtime.db, PHONES[0], MessageStatus.REJECTED)  # failed of itself
    _set_status(at_runtime.db, PHONES[1], MessageStatus.DELIVERED)
    run("sms", "cancel-announcement", str(announcement_id), "--yes")
    record = json.loads(run("sms", "status", "--json").output)
    [progress] = record["announcements"]
    assert progress["messages"] == {"rejected": 1, "delivered": 1, "failed": 10} and progress["cancelled"] == 10
    table = run("sms", "status").output
    [row] = [line for line in table.splitlines() if line.strip("│ ").startswith(str(announcement_id))]
    assert [cell.strip() for cell in row.strip("│").split("│")][3:] == ["12", "0", "0", "1", "1", "10"]


def test_a_message_whose_worker_was_lost_is_cancelled_not_sent_again(run, at_runtime, fake_at):
    """A row ``submitted`` past the lease without AT's answer lost its worker (killed mid-send, or a
    database restored from before the send): the reconciler would queue it again and send it. The
    cancel ends it with the waiting ones; one submitted within the lease is still in flight."""
    announcement_id = _announcement(at_runtime.db)
    lost_at = utcnow() - LEASE - timedelta(minutes=1)
    with at_runtime.db.transaction() as session:
        for phone, submitted_at in ((PHONES[0], lost_at), (PHONES[1], utcnow())):
            row = session.query(OutboundMessage).filter_by(recipient=phone).one()
            row.status, row.submitted_at, row.attempts = MessageStatus.SUBMITTED, submitted_at, 1

    result = run("sms", "cancel-announcement", str(announcement_id), "--yes")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "11 waiting, 1 taken by a worker, 0 sent or ended, 0 cancelled"
    assert result.output.splitlines()[2] == (f"announcement {announcement_id}: 11 message(s) cancelled; 1 already "
                                             "taken by a worker (they may still arrive); 0 sent or ended before")
    rows = {row.recipient: row for row in outbox_rows(at_runtime)}
    assert (rows[PHONES[0]].status, rows[PHONES[0]].failure_reason) == (MessageStatus.FAILED, CANCELLED)
    assert rows[PHONES[1]].status == MessageStatus.SUBMITTED
    reconcile(at_runtime)
    work_queues(at_runtime)
    assert fake_at.requests == []


def test_a_message_in_flight_at_the_cancel_whose_worker_is_then_lost_is_not_sent_again(run, at_runtime, fake_at):
    announcement_id = _announcement(at_runtime.db, phones=PHONES[:2])
    with at_runtime.db.transaction() as session:
        row = session.query(OutboundMessage).filter_by(recipient=PHONES[0]).one()
        row.status, row.submitted_at, row.attempts = MessageStatus.SUBMITTED, utcnow(), 1
    assert run("sms", "cancel-announcement", str(announcement_id), "--yes").exit_code == 0
    reconcile(at_runtime, now=utcnow() + LEASE + timedelta(minutes=1))  # its worker died before AT answered
    work_queues(at_runtime)
    assert fake_at.requests == []


def test_a_message_held_throughout_is_still_waiting_not_taken(pg_database):
    """A row a transaction holds through every pass is still queued when the cancel ends: if that
    transaction ends without taking it (a claim rolled back), its job sends it. It is told apart
    from the messages in flight, not counted among them."""
    announcement_id = _announcement(pg_database)
    with pg_database.session() as session:
        held_id = session.query(OutboundMessage.id).filter_by(recipient=PHONES[3]).scalar()
    with pg_database.engine.connect() as claim, claim.begin():
        claim.execute(text("SELECT id FROM outbound_messages WHERE id = :id FOR UPDATE"), {"id": held_id})
        result = cancel_announcement(pg_database, announcement_id, sleep=lambda _: None)
    assert (result.cancelled, result.in_flight, result.done, result.still_waiting) == (11, 0, 0, 1)
    with pg_database.transaction() as session:  # the holder let it go unclaimed; its job runs: not sent
        assert worker_claim(session, [held_id], {}, "outbox") == []
    with pg_database.session() as session:
        row = session.get(OutboundMessage, held_id)
    assert (row.status, row.failure_reason) == (MessageStatus.FAILED, CANCELLED)


def test_the_operator_is_told_the_messages_still_held_will_not_be_sent(run, at_runtime, monkeypatch):
    announcement_id = _announcement(at_runtime.db)

    def held(db, announcement_id):
        with db.session() as session:
            announcement = session.get(Announcement, announcement_id)
        return announcements.Cancellation(announcement, 10, 0, 0, 0, still_waiting=2)

    monkeypatch.setattr("gateway.cli.sms.cancel_announcement", held)
    result = run("sms", "cancel-announcement", str(announcement_id), "--yes")
    assert result.exit_code == 0
    assert result.output.splitlines()[2:] == [
        f"announcement {announcement_id}: 10 message(s) cancelled; 0 already taken by a worker (they may still "
        "arrive); 0 sent or ended before",
        "2 message(s) were held by a worker's transaction throughout: they are ended when a worker next takes "
        "them, not sent",
    ]


def test_a_claim_ends_the_messages_of_a_cancelled_announcement_whatever_brought_them_back(database):
    """The cancel is recorded on the announcement; a message of it taken later (queued again after a
    retry, a lost worker, a restore) is ended by the claim instead of sent, and one to a phone that
    sent STOP still says so. Other announcements' messages are claimed as ever."""
    from registry.models import PhoneSetting

    cancelled_id = _announcement(database, phones=PHONES[:2])
    other_id = _announcement(database, phones=PHONES[2:3], body="Another")
    with database.transaction() as session:
        session.get(Announcement, cancelled_id).cancelled_at = utcnow()
        session.add(PhoneSetting(phone=PHONES[1], opted_out=True))
        ids = [row.id for row in session.query(OutboundMessage).order_by(OutboundMessage.id)]
    with database.transaction() as session:
        claimed = worker_claim(session, ids, {}, "outbox")
    assert [c.announcement_id for c in claimed] == [other_id]
    with database.session() as session:
        rows = {r.recipient: (r.status, r.failure_reason, r.attempts) for r in session.query(OutboundMessage)}
    assert rows[PHONES[0]] == (MessageStatus.FAILED, CANCELLED, 0)
    assert rows[PHONES[1]][:2] == (MessageStatus.FAILED, "not sent: the phone opted out (STOP)")
    assert rows[PHONES[2]] == (MessageStatus.SUBMITTED, None, 1)
