"""POST /sms/africastalking/delivery: every AT status and failure reason, idempotent and monotonic."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from gateway.app import create_app
from gateway.sms.africastalking import DELIVERY_STATUS, FAILURE_REASONS
from registry.models import MessageKind, MessageStatus, OutboundMessage
from registry.outbox import queue_sms
from tests.pg_waits import wait_until_blocked

URL = "/sms/africastalking/delivery"
PMID = "ATXid_42"


@pytest.fixture
def client(sms_runtime):
    return create_app(runtime=sms_runtime).test_client()


@pytest.fixture
def message(sms_runtime):
    with sms_runtime.db.transaction() as session:
        row = queue_sms(session, "+254712345678", MessageKind.NOTICE, "hello")
        row.status, row.provider_message_id = MessageStatus.SUBMITTED, PMID
    return row.id


def report(client, status, reason=None, pmid=PMID):
    data = {"id": pmid, "status": status, "phoneNumber": "+254712345678", "networkCode": "63902"}
    if reason:
        data["failureReason"] = reason
    return client.post(URL, data=data)


def row(runtime, message_id):
    with runtime.db.session() as session:
        return session.get(OutboundMessage, message_id)


TABLE = (
    [("Success", None, MessageStatus.DELIVERED, None)]
    + [(s, None, MessageStatus.SENT, None) for s in ("Sent", "Submitted", "Buffered")]
    + [("Rejected", r, MessageStatus.REJECTED, r) for r in sorted(FAILURE_REASONS)]
    + [("Failed", r, MessageStatus.FAILED, r) for r in sorted(FAILURE_REASONS)]
    + [("Rejected", None, MessageStatus.REJECTED, "Rejected"), ("Failed", None, MessageStatus.FAILED, "failed"),
       ("AbsentSubscriber", None, MessageStatus.SENT, "AbsentSubscriber"),
       ("Expired", None, MessageStatus.EXPIRED, "Expired"),
       ("Expired", "DeliveryFailure", MessageStatus.EXPIRED, "DeliveryFailure")]
)


@pytest.mark.parametrize(("status", "reason", "expected", "kept_reason"), TABLE)
def test_every_status_and_failure_reason(client, sms_runtime, message, status, reason, expected, kept_reason):
    response = report(client, status, reason)
    assert response.status_code == 200 and response.get_data(as_text=True) == "OK (updated)\n"
    stored = row(sms_runtime, message)
    assert (stored.status, stored.failure_reason) == (expected, kept_reason)
    assert (stored.delivered_at is not None) == (expected is MessageStatus.DELIVERED)
    assert (stored.sent_at is not None) == (expected is MessageStatus.SENT)


def test_the_table_covers_every_documented_status():
    assert {entry[0] for entry in TABLE} == set(DELIVERY_STATUS)


@pytest.mark.parametrize(("sequence", "final"), [
    (["Success", "Sent"], MessageStatus.DELIVERED),
    (["Sent", "Success"], MessageStatus.DELIVERED),
    (["Success", "Buffered", "Submitted"], MessageStatus.DELIVERED),
    (["Buffered", "Sent", "Submitted"], MessageStatus.SENT),
    (["Success", "Failed"], MessageStatus.DELIVERED),
    (["Failed", "Success"], MessageStatus.FAILED),
    (["Rejected", "Sent"], MessageStatus.REJECTED),
    (["AbsentSubscriber", "Success", "Sent"], MessageStatus.DELIVERED),  # unreachable for a while, then reached
    (["Sent", "AbsentSubscriber", "Expired", "Success"], MessageStatus.EXPIRED),
    (["Sent", "Expired", "Buffered"], MessageStatus.EXPIRED),
])
def test_out_of_order_reports_never_go_backwards(client, sms_runtime, message, sequence, final):
    for status in sequence:
        assert report(client, status).status_code == 200
    assert row(sms_runtime, message).status is final


def test_a_repeated_report_changes_nothing_the_second_time(client, sms_runtime, message):
    assert report(client, "Success").get_data(as_text=True) == "OK (updated)\n"
    first = row(sms_runtime, message).delivered_at
    assert report(client, "Success").get_data(as_text=True) == "OK (unchanged)\n"
    assert row(sms_runtime, message).delivered_at == first


def test_a_late_sent_keeps_the_first_sent_time(client, sms_runtime, message):
    report(client, "Sent")
    first = row(sms_runtime, message).sent_at
    report(client, "Buffered")
    assert row(sms_runtime, message).sent_at == first


def test_an_unknown_id_is_200_and_a_log_line(client, caplog):
    with caplog.at_level(logging.INFO, logger="gateway.sms.routes"):
        response = report(client, "Success", pmid="ATXid_nobody")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "OK (unknown)\n")
    assert "delivery report for unknown message id ATXid_nobody" in caplog.text


def test_an_undocumented_status_is_200_and_ignored(client, sms_runtime, message):
    assert report(client, "Teleported").get_data(as_text=True) == "OK (status not known)\n"
    assert row(sms_runtime, message).status is MessageStatus.SUBMITTED


@pytest.mark.parametrize(("data", "reason"), [
    ({"status": "Success"}, "missing field: id"),
    ({"id": PMID}, "missing field: status"),
    ({}, "missing fields: id, status"),
    ({"id": "", "status": "Success"}, "id is empty or longer than 100 characters"),
])
def test_a_malformed_report_is_400(client, data, reason):
    response = client.post(URL, data=data)
    assert (response.status_code, response.get_data(as_text=True)) == (400, reason + "\n")


# --- a report whose id the service never learnt (a premium reply whose send answer was lost) ------


def _taken_without_id(session, phone: str, accepted_at, **values) -> int:
    message = queue_sms(session, phone, MessageKind.REPLY, "Your results", link_id="L1")
    message.status, message.accepted_at = MessageStatus.SUBMITTED, accepted_at
    for name, value in values.items():
        setattr(message, name, value)
    session.flush()
    return message.id


def test_an_unknown_id_goes_to_the_oldest_message_to_its_phone_taken_without_an_id(database):
    from datetime import timedelta

    from registry.models import utcnow
    from registry.services.sms_delivery import ReportOutcome, apply_delivery_report

    now, phone = utcnow(), "+254712345678"
    with database.transaction() as session:
        first = _taken_without_id(session, phone, now - timedelta(minutes=5))
        second = _taken_without_id(session, phone, now - timedelta(minutes=1))
        others = [
            _taken_without_id(session, phone, now - timedelta(hours=25)),  # too old to wait for a report
            _taken_without_id(session, phone, None),  # in flight: not taken yet
            _taken_without_id(session, phone, now, provider_message_id="ATXid_known"),
            _taken_without_id(session, phone, now, status=MessageStatus.FAILED),
            _taken_without_id(session, "+254722000000", now),  # another phone
        ]
    outcomes = []
    with database.transaction() as session:
        for pmid, status, to in (("ATXid_a", MessageStatus.SENT, phone), ("ATXid_a", MessageStatus.DELIVERED, phone),
                                 ("ATXid_b", MessageStatus.FAILED, phone), ("ATXid_c", MessageStatus.DELIVERED, phone),
                                 ("ATXid_d", MessageStatus.DELIVERED, None)):
            outcomes.append(apply_delivery_report(session, pmid, status, "InvalidLinkId", at=now, phone=to))
    assert outcomes == [ReportOutcome.UPDATED] * 3 + [ReportOutcome.UNKNOWN] * 2
    with database.session() as session:
        rows = {m.id: m for m in session.query(OutboundMessage)}
    assert (rows[first].provider_message_id, rows[first].status) == ("ATXid_a", MessageStatus.DELIVERED)
    assert (rows[second].provider_message_id, rows[second].status) == ("ATXid_b", MessageStatus.FAILED)
    assert rows[second].failure_reason == "InvalidLinkId"
    assert [rows[m].provider_message_id for m in others] == [None, None, "ATXid_known", None, None]


def test_no_report_is_matched_by_phone_while_a_send_to_that_phone_is_in_flight(database):
    """The report may be the in-flight send's own, come before its answer was recorded."""
    from datetime import timedelta

    from registry.models import utcnow
    from registry.services.sms_delivery import ReportOutcome, apply_delivery_report

    now, phone = utcnow(), "+254712345678"
    with database.transaction() as session:
        waiting = _taken_without_id(session, phone, now - timedelta(minutes=5))
        flying = _taken_without_id(session, phone, None, submitted_at=now - timedelta(seconds=3))
    with database.transaction() as session:
        assert apply_delivery_report(session, "ATXid_early", MessageStatus.SENT, at=now, phone=phone) is (
            ReportOutcome.UNKNOWN)
    with database.transaction() as session:  # its send is recorded (as taken without an id, here)
        session.get(OutboundMessage, flying).accepted_at = now
    with database.transaction() as session:
        assert apply_delivery_report(session, "ATXid_early", MessageStatus.SENT, at=now, phone=phone) is (
            ReportOutcome.UPDATED)
    with database.session() as session:
        assert session.get(OutboundMessage, waiting).provider_message_id == "ATXid_early"  # the oldest


def test_concurrent_reports_for_one_phone_each_find_their_message(pg_database):
    """PostgreSQL: a report waiting on the row another report is adopting finds, once that one
    commits, either its id now known (Sent, then Success of one message) or the next message."""
    import threading
    from datetime import timedelta

    from registry.models import utcnow
    from registry.services.sms_delivery import ReportOutcome, apply_delivery_report

    now, phone = utcnow(), "+254712345678"

    def at_once(first: tuple[str, MessageStatus], second: tuple[str, MessageStatus]) -> list[ReportOutcome]:
        """``first`` applied and held uncommitted while ``second`` is applied in another transaction."""
        holding, done, outcomes = threading.Event(), threading.Event(), []

        def apply_second() -> None:
            holding.wait(10)
            with pg_database.transaction() as session:
                outcomes.append(apply_delivery_report(session, *second, at=now, phone=phone))
            done.set()

        thread = threading.Thread(target=apply_second)
        thread.start()
        with pg_database.transaction() as session:
            outcomes.append(apply_delivery_report(session, *first, at=now, phone=phone))
            holding.set()
            wait_until_blocked(pg_database)  # the second waits for the row this transaction holds
            assert not done.is_set()
        thread.join(10)
        return outcomes

    def messages() -> tuple[int, int]:
        with pg_database.transaction() as session:
            session.query(OutboundMessage).delete()
            return (_taken_without_id(session, phone, now - timedelta(minutes=2)),
                    _taken_without_id(session, phone, now - timedelta(minutes=1)))

    first, second = messages()
    assert at_once(("ATXid_a", MessageStatus.SENT), ("ATXid_a", MessageStatus.DELIVERED)) == [
        ReportOutcome.UPDATED] * 2
    assert (row_of(pg_database, first).provider_message_id, row_of(pg_database, first).status) == (
        "ATXid_a", MessageStatus.DELIVERED)
    assert row_of(pg_database, second).provider_message_id is None
    first, second = messages()
    assert at_once(("ATXid_a", MessageStatus.DELIVERED), ("ATXid_b", MessageStatus.DELIVERED)) == [
        ReportOutcome.UPDATED] * 2
    assert [row_of(pg_database, m).provider_message_id for m in (first, second)] == ["ATXid_a", "ATXid_b"]


def row_of(database, message_id):
    with database.session() as session:
        return session.get(OutboundMessage, message_id)


def test_a_report_kept_while_its_send_was_in_flight_is_applied_by_the_reconciler(client, sms_runtime):
    from datetime import timedelta

    from registry.models import utcnow
    from workers import reports
    from workers.reconcile import reconcile

    phone = "+254712345678"
    with sms_runtime.db.transaction() as session:
        flying = _taken_without_id(session, phone, None, submitted_at=utcnow())
    data = {"id": "ATXid_quick", "status": "Failed", "failureReason": "InvalidLinkId", "phoneNumber": phone}
    assert client.post(URL, data=data).get_data(as_text=True) == "OK (unknown)\n"
    assert client.post(URL, data=data | {"id": "ATXid_other_app"}).get_data(as_text=True) == "OK (unknown)\n"
    assert sms_runtime.redis.llen(reports.KEY) == 2
    with sms_runtime.db.transaction() as session:  # the answer was lost: recorded as taken, no id
        session.get(OutboundMessage, flying).accepted_at = utcnow()
    first = reconcile(sms_runtime)
    assert (first.reports, sms_runtime.redis.llen(reports.KEY)) == (1, 1)  # the other app's report waits on
    stored = row(sms_runtime, flying)
    assert (stored.status, stored.provider_message_id, stored.failure_reason) == (
        MessageStatus.FAILED, "ATXid_quick", "InvalidLinkId")
    later = reconcile(sms_runtime, now=utcnow() + reports.KEEP + timedelta(seconds=1))
    assert (later.reports, sms_runtime.redis.llen(reports.KEY)) == (0, 0)  # dropped once too old


def test_messages_never_confirmed_expire_after_a_day_and_are_not_resent(sms_runtime):
    from datetime import timedelta

    from registry.models import utcnow
    from workers.reconcile import reconcile

    now, phone = utcnow(), "+254712345678"
    with sms_runtime.db.transaction() as session:
        old = _taken_without_id(session, phone, now - timedelta(hours=24, minutes=1))
        recent = _taken_without_id(session, phone, now - timedelta(hours=23))
        known = _taken_without_id(session, phone, now - timedelta(days=3), provider_message_id="ATXid_k")
    assert reconcile(sms_runtime, now=now).unconfirmed == 1
    assert (row(sms_runtime, old).status, row(sms_runtime, old).failure_reason) == (
        MessageStatus.EXPIRED, "no delivery report within 24 h of a lost or unreadable answer; not resent")
    assert row(sms_runtime, recent).status is row(sms_runtime, known).status is MessageStatus.SUBMITTED
    assert reconcile(sms_runtime, now=now).unconfirmed == 0


def test_an_id_a_message_already_holds_is_never_given_to_another(database):
    """The worker may record a send's id between the report's first look and its match by phone:
    then the id is that send's, and no waiting message takes it (nor an expired one)."""
    from datetime import timedelta

    from registry.models import utcnow
    from registry.services.sms_delivery import adopt

    now, phone = utcnow(), "+254712345678"
    with database.transaction() as session:
        waiting = _taken_without_id(session, phone, now - timedelta(minutes=3))
        _taken_without_id(session, phone, now, provider_message_id="ATXid_1")
        gone = _taken_without_id(session, "+254722000000", now - timedelta(minutes=3), status=MessageStatus.EXPIRED)
    with database.transaction() as session:
        assert adopt(session, "ATXid_1", phone, now) is False
        assert adopt(session, "ATXid_2", "+254722000000", now) is None
        assert adopt(session, "ATXid_3", phone, now) is True
    assert row_of(database, waiting).provider_message_id == "ATXid_3"
    assert row_of(database, gone).provider_message_id is None


def test_an_outage_part_way_through_a_replay_loses_no_kept_report(sms_runtime, monkeypatch):
    from registry.models import utcnow
    from workers import reports

    now = utcnow()
    for n in range(3):
        reports.keep(sms_runtime.redis, f"ATXid_{n}", MessageStatus.DELIVERED, None, "+254712345678", now)
    sms_runtime.redis.rpush(reports.KEY, b"not json")
    real, calls = reports.apply_delivery_report, []

    def flaky(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise ConnectionError("database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(reports, "apply_delivery_report", flaky)
    with pytest.raises(ConnectionError):
        reports.replay(sms_runtime, now)
    kept = [json.loads(raw)["id"] for raw in sms_runtime.redis.lrange(reports.KEY, 0, -1) if raw != b"not json"]
    assert sorted(kept) == ["ATXid_0", "ATXid_1", "ATXid_2"]  # the first kept again, the rest untouched
    assert reports.replay(sms_runtime, now) == 0  # all unknown still; the unreadable entry dropped
    assert b"not json" not in sms_runtime.redis.lrange(reports.KEY, 0, -1)


def test_reports_kept_while_a_full_list_is_replayed_are_not_dropped_in_place_of_the_replayed(sms_runtime, monkeypatch):
    """The list is full (``MAX_KEPT``): each report kept during a replay drops the oldest, one the
    replay has taken. The replay, done, must drop only what is still at the head of those it took."""
    from datetime import timedelta

    from registry.models import utcnow
    from workers import reports

    monkeypatch.setattr(reports, "MAX_KEPT", 3)
    now, old = utcnow(), utcnow() - reports.KEEP - timedelta(seconds=1)  # the replayed are not kept again
    for n in range(3):
        reports.keep(sms_runtime.redis, f"ATXid_old{n}", MessageStatus.DELIVERED, None, "+254712345678", old)
    real, calls = reports.apply_delivery_report, []

    def meanwhile(*args, **kwargs):
        if not calls:  # two reports come while the first taken is applied
            for n in range(2):
                reports.keep(sms_runtime.redis, f"ATXid_new{n}", MessageStatus.DELIVERED, None, "+254712345678", now)
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(reports, "apply_delivery_report", meanwhile)
    reports.replay(sms_runtime, now)
    kept = [json.loads(raw)["id"] for raw in sms_runtime.redis.lrange(reports.KEY, 0, -1)]
    assert kept == ["ATXid_new0", "ATXid_new1"]


def test_control_characters_in_a_failure_reason_are_never_stored(client, sms_runtime, message):
    """A forged report could carry terminal escapes for whoever reads ``elimu messages``."""
    assert report(client, "Failed", "Delivery\x1b]0;owned\x07Failure\x1b[2J").status_code == 200
    assert row(sms_runtime, message).failure_reason == "Delivery]0;ownedFailure[2J"


@pytest.mark.parametrize(("status", "column"), [("Sent", "sent_at"), ("Success", "delivered_at")])
def test_a_report_spooled_in_an_outage_keeps_the_time_it_came(client, sms_runtime, message, monkeypatch, status,
                                                                column):
    """The database is away when the report comes: spooled, and applied an hour later when it is
    back. The message was sent (or delivered) when the report came, not when it was replayed."""
    from sqlalchemy.exc import OperationalError

    import registry.models
    from gateway.degraded import replay_spool

    came, replayed = datetime(2026, 3, 2, 8, 0, tzinfo=UTC), datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def database_away(*args, **kwargs):
        raise OperationalError("UPDATE", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr("gateway.sms.routes.apply_report", database_away)
    monkeypatch.setattr(registry.models, "utcnow", lambda: came)
    assert report(client, status).get_data(as_text=True) == "OK (spooled)\n"
    monkeypatch.setattr(registry.models, "utcnow", lambda: replayed)
    assert replay_spool(sms_runtime) == 1
    stored = getattr(row(sms_runtime, message), column)
    assert stored.replace(tzinfo=UTC) == came
