"""Inbound commands per phone per minute (hardening): a flooding phone gets one SMS telling it to slow down,
then nothing until the minute is over; other phones are not affected."""

from __future__ import annotations

from collections import Counter

import pytest

from gateway.app import create_app
from gateway.ratelimit import INBOUND_PER_MINUTE
from tests.sms.support import outbox_rows, work_queues

FLOODER = "+254712345600"
NEIGHBOUR = "+254712345601"


@pytest.fixture
def client(sms_runtime):
    return create_app(runtime=sms_runtime).test_client()


def _send(client, phone: str, n: int, text: str = "HELP") -> None:
    response = client.post("/sms/africastalking/inbound", data={
        "from": phone, "to": "22384", "text": text, "date": "2026-01-09 10:00:00", "id": f"flood-{phone}-{n}"})
    assert response.status_code == 200


def test_a_flooding_phone_is_told_once_then_ignored_for_the_minute(client, sms_runtime):
    extra = 4
    for n in range(INBOUND_PER_MINUTE.count + extra):
        _send(client, FLOODER, n)
    _send(client, NEIGHBOUR, 0)
    work_queues(sms_runtime)
    rows = outbox_rows(sms_runtime)
    to_flooder = [r.body for r in rows if r.recipient == FLOODER]
    assert len(to_flooder) == INBOUND_PER_MINUTE.count + 1  # the allowed answers and one notice
    assert sum("Too many messages" in body for body in to_flooder) == 1
    assert Counter(r.recipient for r in rows)[NEIGHBOUR] == 1


def test_the_notice_speaks_the_keyword_language(client, sms_runtime):
    for n in range(INBOUND_PER_MINUTE.count + 1):
        _send(client, FLOODER, n, text="MSAADA")
    work_queues(sms_runtime)
    bodies = [r.body for r in outbox_rows(sms_runtime) if r.recipient == FLOODER]
    assert any("Ujumbe mwingi mno" in body for body in bodies)
