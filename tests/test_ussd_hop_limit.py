"""Hops per phone per minute (hardening): a caller past the limit gets a clear END in their language."""

from contextlib import contextmanager

from sqlalchemy import event

from gateway.app import create_app
from gateway.runtime import Runtime
from registry.models import PhoneSetting
from tests.conftest import TEST_SECRET, make_settings
from tests.ussd.support import World


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


@contextmanager
def _statements(db):
    """The SQL statements run inside the block."""
    seen: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_limit_answer_in_kiswahili(runtime, tmp_path):
    """Within a Kiswahili session the answer speaks it, read from the session (no SQL)."""
    with runtime.db.transaction() as s:
        s.add(PhoneSetting(phone="+254712000777", language="sw"))
    client = _client(runtime, tmp_path, limit=1)
    assert _hop(client, "a").get_data(as_text=True).startswith("CON Karibu")
    with _statements(runtime.db) as seen:
        answer = _hop(client, "a", "4").get_data(as_text=True)
    assert answer.startswith("END Maombi mengi") and "*384*1234#" in answer
    assert seen == []


def test_a_limited_hop_issues_no_sql(runtime, tmp_path):
    """The limit keeps a flood off the database: a refused hop of a new session does not read the
    phone's language from the registry (it did, once a hop); with no session nor resume point in
    Redis to tell it, the answer is in English, the default."""
    with runtime.db.transaction() as s:
        s.add(PhoneSetting(phone="+254712000777", language="sw"))
    client = _client(runtime, tmp_path, limit=2)
    _hop(client, "a")
    _hop(client, "b")
    with _statements(runtime.db) as seen:
        answers = [_hop(client, f"flood{i}").get_data(as_text=True) for i in range(20)]
    assert seen == []
    assert all(a.startswith("END Too many requests") for a in answers), answers[:2]


def test_a_limited_hop_speaks_the_language_of_the_phones_dropped_session(runtime, tmp_path):
    """The phone's resume point (read in the hop's one round trip anyway) tells its language."""
    World(runtime.db, TEST_SECRET).learner(phones=("+254712000777",))
    with runtime.db.transaction() as s:
        s.add(PhoneSetting(phone="+254712000777", language="sw"))
    client = _client(runtime, tmp_path, limit=2)
    _hop(client, "a")
    assert _hop(client, "a", "1").get_data(as_text=True).startswith("CON ")  # mid-flow: a resume point
    assert runtime.redis.exists("ussd:resume:+254712000777")
    with _statements(runtime.db) as seen:
        answer = _hop(client, "b").get_data(as_text=True)
    assert seen == []
    assert answer.startswith("END Maombi mengi")
