"""POST /sms/africastalking/optout: a subscriber who blocks our sender ID at the network gets no
more announcements, as after STOP."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.app import create_app
from registry.models import PhoneSetting
from tests.sms.support import work_queues

URL = "/sms/africastalking/optout"


@pytest.fixture
def client(sms_runtime):
    return create_app(runtime=sms_runtime).test_client()


def opted_out(runtime, phone: str) -> bool | None:
    with runtime.db.session() as session:
        return session.scalar(select(PhoneSetting.opted_out).where(PhoneSetting.phone == phone))


def test_opt_out_marks_the_phone_and_start_by_sms_undoes_it(client, sms_runtime):
    response = client.post(URL, data={"senderId": "ELIMU", "phoneNumber": "0712345678"})
    assert (response.status_code, response.get_data(as_text=True)) == (200, "OK\n")
    assert opted_out(sms_runtime, "+254712345678") is True
    again = client.post(URL, data={"senderId": "ELIMU", "phoneNumber": "+254712345678"})
    assert again.status_code == 200  # a repeat is harmless
    client.post("/sms/africastalking/inbound", data={"from": "+254712345678", "to": "22384", "text": "START",
                                                      "id": "in-1", "date": "2026-12-05 09:00:00"})
    work_queues(sms_runtime)
    assert opted_out(sms_runtime, "+254712345678") is False


@pytest.mark.parametrize(("form", "reason"), [
    ({"senderId": "ELIMU"}, "missing field: phoneNumber\n"),
    ({"senderId": "ELIMU", "phoneNumber": "not a phone"}, "phoneNumber is not a phone number\n"),
])
def test_bad_opt_out_is_400_with_the_reason(client, sms_runtime, form, reason):
    response = client.post(URL, data=form)
    assert (response.status_code, response.get_data(as_text=True)) == (400, reason)
    with sms_runtime.db.session() as session:
        assert session.scalar(select(PhoneSetting)) is None
