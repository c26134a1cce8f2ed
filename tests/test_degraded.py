"""Degraded mode: PostgreSQL or Redis down gives deliberate answers, never a 500, and recovers by itself."""

from __future__ import annotations

import json

import pytest

from gateway.app import create_app
from gateway.degraded import replay_spool, spool_dir
from registry.db import Database
from registry.models import MessageKind, MessageStatus, OutboundMessage, Priority
from tests.conftest import unreachable_redis

DOWN_DB = "postgresql+psycopg://nobody@127.0.0.1:1/none"
INBOUND = {"from": "+254712345678", "to": "22252", "text": "HELP", "id": "in-1", "date": "2026-01-09 10:00:00"}


@pytest.fixture
def down_db():
    database = Database(DOWN_DB, connect_args={"connect_timeout": 1})
    yield database
    database.dispose()


def _message(database, provider_id="ATXid_1") -> int:
    with database.transaction() as s:
        row = OutboundMessage(recipient="+254712345678", kind=MessageKind.REPLY, body="hello",
                              priority=Priority.REPLY, status=MessageStatus.SENT, provider_message_id=provider_id)
        s.add(row)
        s.flush()
        return row.id


def test_redis_down(runtime):
    runtime.redis = unreachable_redis()
    client = create_app(runtime=runtime).test_client()
    hop = client.post("/ussd/africastalking", data={"sessionId": "s1", "phoneNumber": "0712345678", "text": ""})
    assert hop.status_code == 200 and hop.data.startswith(b"END ") and b"busy" in hop.data
    inbound = client.post("/sms/africastalking/inbound", data=INBOUND)
    assert inbound.status_code == 200  # stored in the database; handed to the workers by the reconciler
    assert client.get("/readyz").status_code == 503


def test_database_down(runtime, down_db):
    good = runtime.db
    runtime.db = down_db
    client = create_app(runtime=runtime).test_client()
    hop = client.post("/ussd/africastalking", data={"sessionId": "s2", "phoneNumber": "0712345678", "text": ""})
    assert hop.status_code == 200 and hop.data.startswith(b"END ")
    inbound = client.post("/sms/africastalking/inbound", data=INBOUND)
    assert inbound.status_code == 503 and inbound.headers["Retry-After"] == "60"
    report = {"id": "ATXid_1", "status": "Success", "phoneNumber": "+254712345678", "networkCode": "63902"}
    delivery = client.post("/sms/africastalking/delivery", data=report)
    assert delivery.status_code == 200 and delivery.data.startswith(b"OK (spooled)")
    spooled = (spool_dir(runtime) / "delivery.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in spooled] == ["ATXid_1"]
    assert client.get("/readyz").status_code == 503

    # the database returns: the next delivery report that succeeds replays the spool
    runtime.db = good
    message_id = _message(good, "ATXid_1")
    _message(good, "ATXid_2")
    later = client.post("/sms/africastalking/delivery", data={**report, "id": "ATXid_2", "status": "Sent"})
    assert later.status_code == 200
    with good.session() as s:
        assert s.get(OutboundMessage, message_id).status is MessageStatus.DELIVERED
    assert not list(spool_dir(runtime).glob("*.jsonl"))
    assert client.get("/readyz").status_code == 200


def test_a_spooled_session_event_keeps_only_the_shape_of_what_was_typed(runtime, down_db):
    from registry.models import UssdSessionEvent

    good = runtime.db
    runtime.db = down_db
    client = create_app(runtime=runtime).test_client()
    event = {"sessionId": "ATUid_sp", "phoneNumber": "+254712345678", "status": "Incomplete",
             "input": "2*4826*314159", "hopsCount": "3"}
    assert client.post("/ussd/africastalking/events", data=event).data.startswith(b"OK (spooled)")
    spooled = (spool_dir(runtime) / "ussd-events.jsonl").read_text()
    assert "4826" not in spooled and "314159" not in spooled and json.loads(spooled)["input"] == "2*[4]*[6]"
    runtime.db = good
    assert replay_spool(runtime) == 1
    with good.session() as s:
        assert s.query(UssdSessionEvent.last_input).scalar() == "2*[4]*[6]"


def test_a_spooled_session_event_leaves_its_last_screen_off_the_disk_and_replays_whole(runtime, down_db):
    """AT's event carries the last screen the session showed (here a learner's status): nothing stores
    it, so it is not spooled either; every field the event's row is made of still is."""
    from gateway.ussd.events import event_fields
    from registry.models import UssdSessionEvent

    good = runtime.db
    runtime.db = down_db
    client = create_app(runtime=runtime).test_client()
    event = {"sessionId": "ATUid_last", "phoneNumber": "0712345678", "serviceCode": "*384*1234#",
             "networkCode": "63902", "status": "Failed", "durationInMillis": "41000", "hopsCount": "5",
             "input": "3*1", "errorMessage": "timeout", "cost": "KES 0.50", "date": "2026-01-09 10:00:00",
             "lastAppResponse": "END Jane W. Grade 4, Kilimani Primary. KCSE 2025 released.",
             "extra": "Wanjiku"}
    assert client.post("/ussd/africastalking/events", data=event).data.startswith(b"OK (spooled)")
    spooled = (spool_dir(runtime) / "ussd-events.jsonl").read_text()
    assert "Jane" not in spooled and "Kilimani" not in spooled and "Wanjiku" not in spooled
    runtime.db = good
    assert replay_spool(runtime) == 1
    with good.session() as s:
        row = s.query(UssdSessionEvent).one()
        assert {key: getattr(row, key) for key in event_fields(event)} == event_fields(event)


def test_a_spooled_delivery_report_keeps_what_its_replay_reads(runtime, down_db):
    from gateway.degraded import SPOOLED_FIELDS

    runtime.db = down_db
    client = create_app(runtime=runtime).test_client()
    report = {"id": "ATXid_9", "status": "Failed", "phoneNumber": "+254712345678", "networkCode": "63902",
              "failureReason": "UserInBlackList", "retryCount": "1", "note": "Jane Wanjiku"}
    assert client.post("/sms/africastalking/delivery", data=report).data.startswith(b"OK (spooled)")
    spooled = json.loads((spool_dir(runtime) / "delivery.jsonl").read_text())
    assert set(spooled) == SPOOLED_FIELDS["delivery"] | {"elimu_received_at"}


def test_replay_keeps_what_it_cannot_apply(runtime, down_db):
    from gateway.degraded import spool

    spool(runtime, "delivery", {"id": "ATXid_9", "status": "Success", "phoneNumber": "+254712345678"})
    good = runtime.db
    runtime.db = down_db
    assert replay_spool(runtime) == 0
    assert (spool_dir(runtime) / "delivery.jsonl").exists()
    runtime.db = good
    message_id = _message(good, "ATXid_9")
    assert replay_spool(runtime) == 1
    with good.session() as s:
        assert s.get(OutboundMessage, message_id).status is MessageStatus.DELIVERED


def test_a_crash_is_never_a_500(runtime, monkeypatch):
    import workers.inbound

    def boom(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr("gateway.sms.routes.receive", boom)
    client = create_app(runtime=runtime).test_client()
    inbound = client.post("/sms/africastalking/inbound", data=INBOUND)
    assert inbound.status_code == 503 and inbound.headers["Retry-After"] == "60"
    assert b"Traceback" not in inbound.data
    assert workers.inbound.receive is not boom


def test_a_spool_file_a_dead_replayer_left_is_replayed_and_one_held_is_left_alone(runtime):
    """A replayer that dies mid-way leaves ``<kind>.<pid>.replaying``: replayed again once no process
    holds its lock (a live replayer holds it, here another process), never by two processes."""
    import subprocess
    import sys

    folder = spool_dir(runtime)
    folder.mkdir(parents=True)
    left = folder / "delivery.4242.replaying"
    left.write_text(json.dumps({"id": "ATXid_7", "status": "Success", "phoneNumber": "+254712345678"}) + "\n")
    message_id = _message(runtime.db, "ATXid_7")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); time.sleep(60)", str(left)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert replay_spool(runtime) == 0 and left.exists()  # its replayer is alive
    finally:
        holder.kill()
        holder.wait()
    assert replay_spool(runtime) == 1
    assert not list(folder.iterdir())
    with runtime.db.session() as s:
        assert s.get(OutboundMessage, message_id).status is MessageStatus.DELIVERED


def test_a_callback_spooled_as_a_replayer_takes_the_file_goes_to_the_fresh_spool(runtime, monkeypatch):
    """A replayer renames ``<kind>.jsonl`` between a writer's open and its lock: the writer's line
    goes to a fresh spool, not into the file taken (read already, it would be lost)."""
    import fcntl
    import os
    from types import SimpleNamespace

    from gateway.degraded import spool

    spool(runtime, "delivery", {"id": "ATXid_1"})
    fresh, taken = spool_dir(runtime) / "delivery.jsonl", spool_dir(runtime) / "delivery.1-replayer.replaying"

    def taken_before_the_lock(fh, operation):
        if not taken.exists():
            os.replace(fresh, taken)
        fcntl.flock(fh, operation)

    monkeypatch.setattr("gateway.degraded.fcntl", SimpleNamespace(
        flock=taken_before_the_lock, LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB))
    spool(runtime, "delivery", {"id": "ATXid_2"})
    assert [json.loads(line)["id"] for line in taken.read_text().splitlines()] == ["ATXid_1"]
    assert [json.loads(line)["id"] for line in fresh.read_text().splitlines()] == ["ATXid_2"]
