"""1,000 replayed hops, 1,000 replayed inbound SMS and 1,000 replayed delivery reports, on PostgreSQL and real
Redis, as a retrying aggregator sends them: every side effect happens once, nothing is lost."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date

import pytest
from sqlalchemy import select

from gateway.app import create_app
from registry.models import (
    InboundMessage,
    MessageKind,
    MessageStatus,
    OneTimeCode,
    OutboundMessage,
)
from tests.faults.support import Family, Results, seed_school
from tests.figures import report_figure
from workers.worker import run_worker

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

PHONES = [f"+2547140{n:05d}" for n in range(10)]


def _seed(runtime) -> None:
    seed_school(runtime, PHONES,
                Family(upi="R", first="Brian", last="Kiprono", born=date(2011, 2, 3), gender="M", birth_cert="BCR",
                       grade="Grade 8", relationship="father"),
                Results(index="36611031", count=100, mean_grade="A-", points=80, subjects="ENG:A-;KIS:B+;MAT:A"),
                notices=100, notice_status=MessageStatus.SUBMITTED, notice_ids="ATXid_replay")


def test_thousand_replays_of_each_callback(integration_runtime):
    runtime = integration_runtime
    _seed(runtime)
    client = create_app(runtime=runtime).test_client()
    rng = random.Random(11)

    # USSD: 10 activations up to the OTP, every hop sent once and replayed 25 times (1,000 replays).
    hop_replays, changed_answers = 0, 0
    for k, phone in enumerate(PHONES):
        for hop_text in ("", "1", f"1*BCR{k}", f"1*BCR{k}*03022011"):
            form = {"sessionId": f"replay-{k}", "phoneNumber": phone, "serviceCode": "*384*1234#", "text": hop_text}
            first = client.post("/ussd/africastalking", data=form).get_data(as_text=True)
            for _ in range(25):
                hop_replays += 1
                if client.post("/ussd/africastalking", data=form).get_data(as_text=True) != first:
                    changed_answers += 1
        assert "code" in first.lower(), first

    # Inbound SMS: 100 messages, each id sent 10 times, in shuffled order (1,000 posts).
    posts = [n for n in range(100) for _ in range(10)]
    rng.shuffle(posts)
    for n in posts:
        r = client.post("/sms/africastalking/inbound", data={
            "from": f"+2547150{n:05d}", "to": "22252", "text": f"KCSE 36611031{n:03d} Brian", "id": f"replay-in-{n}",
            "date": "2026-01-09 10:00:00"})
        assert r.status_code == 200

    # Delivery reports: 100 messages, 10 reports each, out of order, the final Success among late Sents.
    reports = [(n, status) for n in range(100) for status in ["Sent", "Submitted", "Buffered", "Success", "Sent",
                                                              "Success", "Sent", "Buffered", "Submitted", "Sent"]]
    rng.shuffle(reports)
    for n, status in reports:
        r = client.post("/sms/africastalking/delivery", data={"id": f"ATXid_replay{n}", "status": status,
                                                               "phoneNumber": PHONES[n % 10]})
        assert r.status_code == 200

    run_worker(runtime, burst=True, logging_level="WARNING")
    with runtime.db.session() as s:
        otps = Counter(s.scalars(select(OneTimeCode.phone)))
        otp_sms = Counter(s.scalars(select(OutboundMessage.recipient).where(OutboundMessage.kind == MessageKind.OTP)))
        inbound = s.scalars(select(InboundMessage.provider_id)).all()
        replies = Counter(s.scalars(select(OutboundMessage.recipient).where(OutboundMessage.kind == MessageKind.REPLY)))
        statuses = Counter(s.scalars(select(OutboundMessage.status).where(
            OutboundMessage.provider_message_id.like("ATXid_replay%"))))

    duplicated = (sum(c - 1 for c in otp_sms.values()) + sum(c - 1 for c in replies.values())
                  + len(inbound) - len(set(inbound)))
    lost = (len(PHONES) - len(otp_sms)) + (100 - len(replies)) + (100 - statuses[MessageStatus.DELIVERED])
    report_figure("fault", "replays: USSD hops replayed", hop_replays)
    report_figure("fault", "replays: replayed hops answered differently", changed_answers)
    report_figure("fault", "replays: inbound SMS posts (100 ids x 10)", len(posts))
    report_figure("fault", "replays: delivery reports (100 messages x 10, shuffled)", len(reports))
    report_figure("fault", "replays: lost", lost)
    report_figure("fault", "replays: duplicated (OTPs, replies, stored inbound)", duplicated)
    assert hop_replays == 1000 and changed_answers == 0
    assert dict(otps) == dict.fromkeys(PHONES, 1)
    assert lost == 0 and duplicated == 0
    assert dict(statuses) == {MessageStatus.DELIVERED: 100}
