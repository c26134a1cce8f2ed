"""Hops per phone per minute (hardening): a caller past the limit gets a clear END in their language."""

from gateway.app import create_app
from gateway.runtime import Runtime
from registry.models import PhoneSetting
from tests.conftest import make_settings


def _client(runtime, tmp_path, limit: int):
    settings = make_settings(tmp_path, runtime.db, ussd_hops_per_minute=limit)
    return create_app(runtime=Runtime.build(settings, db=runtime.db, redis=runtime.redis)).test_client()


def _hop(client, session: str, text: str = "", phone: str = "+254712000777"):
    return client.post("/ussd/africastalking", data={"sessionId": session, "phoneNumber": phone, "text": text})


def test_hops_past_the_limit_end_politely(runtime, tmp_path):
    client = _client(runtime, tmp_path, limit=5)
    answers = [_hop(client, f"s{i}").get_data(as_text=True) for i in range(7)]
    assert all(a.startswith("CON ") for a in answers[:5])
    assert answers[5].startswith("END ") and "Too many requests" in answers[5] and "*384*1234#" in answers[5]
    assert _hop(client, "other", phone="+254712000778").get_data(as_text=True).startswith("CON ")


def test_a_retried_hop_is_not_counted(runtime, tmp_path):
    client = _client(runtime, tmp_path, limit=2)
    first = _hop(client, "same").get_data(as_text=True)
    assert all(_hop(client, "same").get_data(as_text=True) == first for _ in range(5))


def test_limit_answer_in_kiswahili(runtime, tmp_path):
    with runtime.db.transaction() as s:
        s.add(PhoneSetting(phone="+254712000777", language="sw"))
    client = _client(runtime, tmp_path, limit=1)
    _hop(client, "a")
    assert "Maombi mengi" in _hop(client, "b").get_data(as_text=True)
