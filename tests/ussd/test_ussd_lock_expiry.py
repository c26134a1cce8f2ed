"""A USSD hop that outlives its session lock (a slow database), on PostgreSQL and a real Redis."""

from __future__ import annotations

import threading

import pytest

from gateway.ussd import sessions
from gateway.ussd.routes import hop_handler
from tests.ussd.support import PHONE

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
TEXT = "1*12345678*05092014"


def post(client, text: str) -> str:
    response = client.post("/ussd/africastalking", data={"sessionId": "slow", "phoneNumber": PHONE,
                                                        "serviceCode": "*384*1234#", "text": text})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_a_hop_that_outlived_its_lock_leaves_the_lock_of_the_twin_that_took_it(real_stack, integration_runtime,
                                                                                monkeypatch):
    """Hop A's lock expires while A waits on the database; twin B takes the lock and acts. A, done,
    must not delete B's lock: a third twin C would find the session free and act a third time."""
    _, _, world, client = real_stack
    world.learner()
    for text in ("", "1", "1*12345678"):
        post(client, text)
    handler = hop_handler(integration_runtime)
    redis, lock = integration_runtime.redis, "ussd:lock:slow"
    real_start, real_wait = handler.services.start_activation, handler.store.wait_for_answer
    inside = [threading.Event(), threading.Event()]
    go = [threading.Event(), threading.Event()]
    third_arrived = threading.Event()
    calls: list[int] = []

    def slow_start(*args, **kwargs):
        n = len(calls)
        calls.append(n)
        if n < 2:
            inside[n].set()
            assert go[n].wait(10)
        else:
            third_arrived.set()
        return real_start(*args, **kwargs)

    def wait_for_answer(*args, **kwargs):
        third_arrived.set()
        return real_wait(*args, **kwargs)

    handler.services.start_activation = slow_start
    handler.store.wait_for_answer = wait_for_answer
    answers: dict[str, str] = {}

    def hop(name: str) -> None:
        answers[name] = post(client.application.test_client(), TEXT)

    monkeypatch.setattr(sessions, "LOCK_MS", 50)  # A's lock: expires while A waits
    a = threading.Thread(target=hop, args=("a",))
    a.start()
    assert inside[0].wait(10)
    for _ in range(2000):  # until Redis expired it (a state, not a guess at a duration)
        if not redis.exists(lock):
            break
        threading.Event().wait(0.005)
    assert not redis.exists(lock)
    monkeypatch.setattr(sessions, "LOCK_MS", 5000)
    b = threading.Thread(target=hop, args=("b",))
    b.start()
    assert inside[1].wait(10)
    go[0].set()
    a.join(10)
    assert redis.exists(lock), "A's save deleted the lock B holds"
    c = threading.Thread(target=hop, args=("c",))
    c.start()
    assert third_arrived.wait(10)
    go[1].set()
    b.join(10)
    c.join(10)
    assert len(calls) == 2, "a third twin acted"
    assert answers["c"] == answers["b"]
    assert not redis.exists(lock)
