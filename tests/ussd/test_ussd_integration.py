"""The USSD service on production-shaped servers: PostgreSQL and a real Redis (CI requires both)."""

from __future__ import annotations

import threading

from sqlalchemy import select

from registry.models import AuditEvent, UssdSessionEvent
from tests.ussd.support import PHONE, PIN, STRANGER


def test_activation_upi_and_status_on_postgres_and_redis(real_stack, real_ussd):
    clock, sms, world, _ = real_stack
    learner = world.learner()
    world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None, grade="Form 4")
    world.result(learner, "KCSE", 2025, "36611030002")
    phone = real_ussd()
    phone.script("""
    dial
    > 1
    > 12345678
    > 05092014
    < CON We sent a 6-digit code by SMS. Enter it:
    < ...
    > {otp}
    > 4826
    > 4826
    < END Your account is active. The learner's UPI will come by SMS. To add another learner, dial *384*1234# and choose 1.
    """)
    clock.advance(seconds=61)
    phone.script(f"""
    dial
    > 3
    > {PIN}
    < END Jane W. (Grade 6)
    < Kilimani Primary School
    < Enrolled
    < Results: KCSE 2025
    dial
    > 2
    > {PIN}
    > {{otp}}
    < END The UPI of Jane W. will come by SMS.
    """)
    assert [m.kind.value for m in sms.messages(PHONE)] == ["otp", "upi", "otp", "upi"]
    with world.db.transaction() as session:
        actions = sorted(a for a in session.scalars(select(AuditEvent.action)))
    assert actions == ["pin_chosen", "status_shown", "upi_sent", "upi_sent"]  # the PIN chosen is counted


def test_kiswahili_and_unlinked_phone_on_real_servers(real_stack, real_ussd):
    _, sms, world, _ = real_stack
    world.learner()
    real_ussd(STRANGER).script("""
    dial
    > 4
    > 2
    > 2
    < CON Karibu Elimu
    < ...
    > 1
    < END Simu hii haipo kwenye rekodi za shule. Omba shule ya mwanafunzi iongeze nambari yako, kisha piga *384*1234# tena.
    dial
    < CON Karibu Elimu
    < ...
    """)
    assert sms.messages(STRANGER) == []


def _post(client, session_id: str, text: str) -> str:
    response = client.post("/ussd/africastalking", data={"sessionId": session_id, "phoneNumber": PHONE, "text": text})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_replay_and_simultaneous_hops_send_one_code(real_stack, integration_runtime):
    from gateway.ussd.routes import hop_handler

    _, sms, world, client = real_stack
    world.learner()
    for text in ("", "1", "1*12345678"):
        _post(client, "int-1", text)
    handler = hop_handler(integration_runtime)
    inside, waiting = threading.Event(), threading.Event()
    real_start, real_wait = handler.services.start_activation, handler.store.wait_for_answer

    def slow_start(*args, **kwargs):
        inside.set()
        assert waiting.wait(10)
        return real_start(*args, **kwargs)

    def wait_for_answer(*args, **kwargs):
        waiting.set()
        return real_wait(*args, **kwargs)

    handler.services.start_activation, handler.store.wait_for_answer = slow_start, wait_for_answer
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(_post(client.application.test_client(), "int-1",
                                                                    "1*12345678*05092014")))
               for _ in range(2)]
    threads[0].start()
    assert inside.wait(10)
    threads[1].start()
    for thread in threads:
        thread.join(10)
    answers.append(_post(client, "int-1", "1*12345678*05092014"))  # and an AT retry after both
    assert len(set(answers)) == 1 and answers[0].startswith("CON We sent a 6-digit code")
    assert len(sms.otps(PHONE)) == 1


def test_expiry_and_resume_on_real_redis(real_stack, real_ussd):
    clock, _, world, client = real_stack
    world.learner()
    _post(client, "int-2", "")
    _post(client, "int-2", "4")
    clock.advance(seconds=201)
    assert _post(client, "int-2", "4*2").startswith("CON Welcome to Elimu")
    phone = real_ussd()
    phone.script("dial\n> 1\n> 12345678")
    clock.advance(minutes=4)
    phone.script("dial\n< CON Your last session did not finish.\n< ...\n> 1\n"
                 "< CON Enter the learner's date of birth (DDMMYYYY):\n< ...")
    clock.advance(minutes=5, seconds=1)
    phone.script("dial\n< CON Welcome to Elimu\n< ...")


def test_session_events_upsert_on_postgres(real_stack, integration_runtime):
    client = real_stack[3]
    form = {"sessionId": "int-ev", "phoneNumber": "+254712345678", "status": "Incomplete", "hopsCount": "3",
            "durationInMillis": "9000", "input": "1*2", "serviceCode": "*384*1234#" + "9" * 40}
    for status in ("Incomplete", "Incomplete", "Success"):
        assert client.post("/ussd/africastalking/events", data=dict(form, status=status)).status_code == 200
    with integration_runtime.db.transaction() as session:
        rows = list(session.scalars(select(UssdSessionEvent)))
    assert [(r.session_id, r.status, r.hops_count, len(r.service_code)) for r in rows] == [("int-ev", "Success", 3, 32)]
