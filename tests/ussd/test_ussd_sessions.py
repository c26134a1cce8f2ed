"""Sessions: retried hops, concurrent twins, expiry, resume, and text that does not add up."""

from __future__ import annotations

import hashlib
import hmac
import re
import threading

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event

from gateway.ussd.routes import hop_handler
from gateway.ussd.sessions import PROVIDER_ANSWER_MS, SessionStore, TextDigest
from tests.ussd.support import PHONE, STRANGER


def post(client, session_id: str, text: str, phone: str = PHONE) -> str:
    response = client.post("/ussd/africastalking", data={"sessionId": session_id, "phoneNumber": phone,
                                                        "serviceCode": "*384*1234#", "text": text})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_replayed_hop_gets_the_same_answer_and_one_code(world, stack, sms):
    world.learner()
    client = stack[3]
    post(client, "s1", "")
    post(client, "s1", "1")
    post(client, "s1", "1*12345678")
    first = post(client, "s1", "1*12345678*05092014")
    again = post(client, "s1", "1*12345678*05092014")
    assert first == again and first.startswith("CON We sent a 6-digit code")
    assert len(sms.otps(PHONE)) == 1
    # A replay of an older hop also gets its old answer, and the conversation goes on from the newest.
    assert post(client, "s1", "1*12345678").startswith("CON Enter the learner's date of birth")
    assert post(client, "s1", "1*12345678*05092014*000000").startswith("CON Wrong code. 2 tries left.")


def test_two_simultaneous_identical_hops_act_once(world, stack, sms, runtime):
    """The first hop holds the lock inside the registry call until the second is waiting for its answer."""
    world.learner()
    app_client = stack[3]
    post(app_client, "s2", "")
    post(app_client, "s2", "1")
    post(app_client, "s2", "1*12345678")
    handler = hop_handler(runtime)
    inside, waiting = threading.Event(), threading.Event()
    real_start, real_wait = handler.services.start_activation, handler.store.wait_for_answer

    def slow_start(*args, **kwargs):
        inside.set()
        assert waiting.wait(10), "the twin never waited"
        return real_start(*args, **kwargs)

    def wait_for_answer(*args, **kwargs):
        waiting.set()
        return real_wait(*args, **kwargs)

    handler.services.start_activation = slow_start
    handler.store.wait_for_answer = wait_for_answer
    answers: dict[str, str] = {}
    replayed = hops("replayed")
    was_on = handler.store.load("s2").state["screen"]
    shown = "act.otp"
    on_shown, on_was_on = (value("elimu_ussd_hops_total", screen=screen, outcome="replayed") for screen in (shown, was_on))

    def hop(name: str) -> None:
        answers[name] = post(app_client.application.test_client(), "s2", "1*12345678*05092014")

    first = threading.Thread(target=hop, args=("first",))
    first.start()
    assert inside.wait(10)
    second = threading.Thread(target=hop, args=("second",))
    second.start()
    first.join(10)
    second.join(10)
    assert answers["first"] == answers["second"]
    assert answers["first"].startswith("CON We sent a 6-digit code")
    assert len(sms.otps(PHONE)) == 1
    assert handler.store.load("s2").state["screen"] == shown != was_on
    assert hops("replayed") - replayed == 1  # the twin, given the first hop's answer
    # ... counted on the screen of that answer (the code), not the one the twin was on (the date of birth)
    assert value("elimu_ussd_hops_total", screen=shown, outcome="replayed") - on_shown == 1
    assert value("elimu_ussd_hops_total", screen=was_on, outcome="replayed") == on_was_on


def test_an_expired_session_starts_fresh(world, stack, clock):
    world.learner()
    client = stack[3]
    post(client, "s3", "")
    post(client, "s3", "4")
    clock.advance(seconds=201)
    assert post(client, "s3", "4*2").startswith("CON Welcome to Elimu")
    # ... and goes on from there: the stale text is not replayed through the screens.
    assert post(client, "s3", "4*2*4").startswith("CON My account")


def test_resume_within_five_minutes(world, ussd, clock):
    world.learner()
    phone = ussd()
    phone.script("dial\n> 1\n> 12345678")
    clock.advance(minutes=4, seconds=59)
    phone.script("""
    dial
    < CON Your last session did not finish.
    < 1. Continue where you left off
    < 2. Start over
    > 1
    < CON Enter the learner's date of birth (DDMMYYYY):
    < 0. Back
    < 00. Home
    > 05092014
    < CON We sent a 6-digit code by SMS. Enter it:
    < ...
    > {otp}
    < CON Choose a 4-digit PIN:
    < ...
    """)


def test_resume_offer_in_kiswahili_and_start_over(world, ussd, clock):
    world.learner()
    phone = ussd()
    phone.script("dial\n> 4\n> 2\n> 2\n> 1\n> 12345678")
    phone.script("""
    dial
    < CON Hukumaliza ulichokuwa ukifanya mara ya mwisho.
    < 1. Endelea ulipoishia
    < 2. Anza upya
    > 2
    < CON Karibu Elimu
    < ...
    dial
    < CON Karibu Elimu
    < ...
    """)


def test_no_resume_after_five_minutes(world, ussd, clock):
    world.learner()
    phone = ussd()
    phone.script("dial\n> 1\n> 12345678")
    clock.advance(minutes=5, seconds=1)
    phone.script("dial\n< CON Welcome to Elimu\n< ...")


def test_no_resume_after_a_finished_session_or_from_the_main_menu(world, ussd):
    world.learner()
    phone = ussd()
    phone.script("dial\n> 1\n> 12345678\n> 0\n> 00\n> 7\n> 7\n> 7")  # ends: too many invalid answers
    phone.script("dial\n< CON Welcome to Elimu\n< ...")
    phone.script("dial\n> 4")  # dropped on a menu, not mid-flow
    phone.script("dial\n< CON Welcome to Elimu\n< ...")


def test_too_many_invalid_answers_on_the_code_screen_can_be_resumed_without_the_old_hint(world, ussd):
    """Three malformed answers end the session, but on a screen worth coming back to the parent may
    continue there (the code already sent stays good) rather than prove the learner again."""
    world.learner()
    phone = ussd()
    phone.script("""
    dial
    > 1
    > 12345678
    > 05092014
    < CON We sent a 6-digit code by SMS. Enter it:
    < ...
    > 12
    < CON Enter 6 digits.
    < ...
    > 12
    > 12
    < END Too many invalid answers. Please dial *384*1234# again.
    dial
    < CON Your last session did not finish.
    < ...
    > 1
    < CON We sent a 6-digit code by SMS. Enter it:
    < 0. Back
    < 00. Home
    > {otp}
    < CON Choose a 4-digit PIN:
    < ...
    """)


def test_back_from_the_code_screen_and_the_same_details_again_keep_the_code_sent(world, ussd, sms):
    """A parent whose code is slow to come goes back (to the date of birth, one screen) and types the
    details again within the minute: the code already sent is still good, so the code screen comes
    back (it ended with 'wait')."""
    world.learner()
    ussd().script("""
    dial
    > 1
    > 12345678
    > 05092014
    < CON We sent a 6-digit code by SMS. Enter it:
    < ...
    > 0
    < CON Enter the learner's date of birth (DDMMYYYY):
    < ...
    > 0
    < CON Enter the learner's birth certificate no. or assessment/index no.:
    < ...
    > 12345678
    > 05092014
    < CON The code sent less than a minute ago is still good.
    < We sent a 6-digit code by SMS. Enter it:
    < 0. Back
    < 00. Home
    > {otp}
    < CON Choose a 4-digit PIN:
    < ...
    """)
    assert len(sms.otps(PHONE)) == 1
    # starting over within the minute after the code was used: it is not offered again, and the
    # minute between codes holds
    ussd().script("dial\n< CON Your last session did not finish.\n< ...\n> 2\n> 1\n> 12345678\n> 05092014\n"
                  "< END A code was sent less than a minute ago. Wait a minute, then dial *384*1234# again.")


def test_resume_is_only_for_the_same_phone(world, ussd):
    world.learner()
    ussd().script("dial\n> 1\n> 12345678")
    ussd(STRANGER).script("dial\n< CON Welcome to Elimu\n< ...")


def test_a_star_typed_by_the_caller_stays_in_the_input(world, stack):
    world.learner()
    client = stack[3]
    post(client, "s4", "")
    post(client, "s4", "1")
    assert post(client, "s4", "1*12*34").startswith("CON Enter the number only.")


def test_text_that_does_not_extend_the_last_one_shows_the_screen_again(world, stack):
    client = stack[3]
    post(client, "s5", "")
    assert post(client, "s5", "4").startswith("CON My account")
    assert post(client, "s5", "9*9").startswith("CON My account")
    assert post(client, "s5", "9*9*2").startswith("CON Choose language:")


def test_redis_never_holds_what_was_typed_nor_a_plain_hash_of_it(world, stack, sms, runtime):
    """A session's text holds every input: the one-time code and the PIN never reach Redis, in
    clear or as a hash anyone could reverse (ten thousand PINs), and the session still follows."""
    import hashlib

    world.learner()
    client = stack[3]
    typed = ["", "1", "1*12345678", "1*12345678*05092014"]
    for text in typed:
        post(client, "s10", text)
    code = sms.last_otp(PHONE)
    typed += [f"{typed[-1]}*{code}", f"{typed[-1]}*{code}*4826"]
    assert post(client, "s10", typed[-2]).startswith("CON Choose a 4-digit PIN")
    assert post(client, "s10", typed[-1]).startswith("CON Enter the PIN again")
    assert post(client, "s10", typed[-2]).startswith("CON Choose a 4-digit PIN")  # a retried hop: its answer
    stored = b" ".join(runtime.redis.dump(key) or b"" for key in runtime.redis.keys("*"))
    for secret in (code, "4826", typed[-2], typed[-1]):
        # as a value of its own: not inside a longer run of letters and digits (a hex digest, a
        # timestamp), where four or six digits turn up by chance now and then
        assert not re.search(rb"(?<![0-9A-Za-z])" + re.escape(secret.encode()) + rb"(?![0-9A-Za-z])", stored)
        for text in typed:
            assert hashlib.sha256(text.encode()).hexdigest()[:20].encode() not in stored
    assert post(client, "s10", f"{typed[-1]}*4826").startswith("END Your account is active.")


def test_a_session_id_reused_by_another_phone_is_refused(stack):
    client = stack[3]
    post(client, "s6", "")
    assert post(client, "s6", "", phone=STRANGER).startswith("END ")


BUSY_EN = "END Service busy. Please try again in a few minutes."
BUSY_SW = "END Huduma ina shughuli nyingi. Tafadhali jaribu tena baada ya dakika chache."


def test_a_kiswahili_phone_is_told_it_is_busy_in_kiswahili(world, ussd, stack, runtime, monkeypatch):
    """The busy answers a hop gets without an error (another hop of the session holds it; a session
    id another phone holds) speak the language Redis knows for the phone (its session's), and read
    nothing from the database: they come when it is flooded. A phone Redis knows nothing of is
    answered in the default language, whatever the registry holds for it."""
    client = stack[3]
    for number in (PHONE, STRANGER):
        ussd(number).script("dial\n> 4\n> 2\n> 2")  # Kiswahili chosen
    post(client, "s11", "")
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    event.listen(world.db.engine, "before_cursor_execute", count)
    store = hop_handler(runtime).store
    real_wait, waited = store.wait_for_answer, []

    def wait_for_answer(session_id: str, text: str, phone: str, timeout: float = 3.0):
        """The twin's wait, over at once (not after its 3 s): the other hop is still working then."""
        waited.append(session_id)
        return real_wait(session_id, text, phone, timeout=0.0)

    monkeypatch.setattr(store, "wait_for_answer", wait_for_answer)
    runtime.redis.set("ussd:lock:s11", "another-hop", px=5000)  # a hop of the session, still working
    assert post(client, "s11", "4") == BUSY_SW
    assert waited == ["s11"]  # busy after waiting for the other hop's answer, which never came
    runtime.redis.delete("ussd:lock:s11")
    assert post(client, "s11", "", phone=STRANGER) == BUSY_EN  # nothing in Redis tells its language
    runtime.redis.set("ussd:lock:s14", "another-hop", px=5000)  # a first hop still working: no record yet
    assert post(client, "s14", "") == BUSY_EN
    assert waited == ["s11", "s14"]
    event.remove(world.db.engine, "before_cursor_execute", count)
    assert statements == []


def value(name: str, **labels: str) -> float:
    """A sample of this process's metrics (0 before it was first counted)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def hops(outcome: str) -> float:
    """``elimu_ussd_hops_total`` of ``outcome``, all screens."""
    return sum(sample.value for metric in REGISTRY.collect() if metric.name == "elimu_ussd_hops"
               for sample in metric.samples
               if sample.name == "elimu_ussd_hops_total" and sample.labels["outcome"] == outcome)


def test_busy_answers_without_an_error_are_counted_by_why(world, stack, runtime, monkeypatch):
    """A twin that gives up waiting for the hop holding its session (``locked``), and a hop naming a
    session id another phone holds (``other_phone``), answered busy: once counted nowhere."""
    client = stack[3]
    store = hop_handler(runtime).store
    real_wait = store.wait_for_answer
    monkeypatch.setattr(store, "wait_for_answer", lambda session_id, text, phone, timeout=3.0:
                        real_wait(session_id, text, phone, timeout=0.0))
    before = {outcome: hops(outcome) for outcome in ("locked", "other_phone", "busy")}
    locked = value("elimu_ussd_hops_total", screen="acct", outcome="locked")
    post(client, "s15", "")
    post(client, "s15", "4")  # my account
    runtime.redis.set("ussd:lock:s15", "another-hop", px=5000)  # a hop of the session, still working
    assert post(client, "s15", "4*1") == BUSY_EN
    assert post(client, "s15", "", phone=STRANGER) == BUSY_EN  # waits too, and is never handed PHONE's answer
    runtime.redis.set("ussd:lock:s16", "another-hop", px=5000)  # a first hop still working: no record yet
    assert post(client, "s16", "") == BUSY_EN
    runtime.redis.delete("ussd:lock:s15")
    assert post(client, "s15", "4*1", phone=STRANGER) == BUSY_EN
    moved = {outcome: hops(outcome) - before[outcome] for outcome in before}
    assert moved == {"locked": 2, "other_phone": 2, "busy": 0}
    assert value("elimu_ussd_hops_total", screen="acct", outcome="locked") - locked == 1


def test_a_hop_that_fails_is_counted_busy_with_its_cause(world, stack, runtime, monkeypatch):
    """An outage and a bug both answer busy; elimu_degraded_answers_total{answer="busy"} tells them apart."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from sqlalchemy.exc import OperationalError

    world.learner()
    client = stack[3]
    handler = hop_handler(runtime)
    failures = iter([OperationalError("SELECT 1", {}, Exception("server closed the connection")),
                     KeyError("a bug"), RedisConnectionError("Connection refused")])

    def failing(*args, **kwargs):
        raise next(failures)

    causes = ("database", "error", "redis")
    before = {cause: value("elimu_degraded_answers_total", answer="busy", cause=cause) for cause in causes}
    busy = hops("busy")
    monkeypatch.setattr(handler.services, "start_activation", failing)
    for session_id in ("s17", "s18"):
        post(client, session_id, "")
        post(client, session_id, "1")
        post(client, session_id, "1*12345678")
        assert post(client, session_id, "1*12345678*05092014") == BUSY_EN
    monkeypatch.setattr(handler.store, "open", failing)
    assert post(client, "s19", "") == BUSY_EN
    moved = {cause: value("elimu_degraded_answers_total", answer="busy", cause=cause) - before[cause]
             for cause in causes}
    assert moved == {"database": 1, "error": 1, "redis": 1}
    assert hops("busy") - busy == 3


def test_a_hop_that_fails_mid_session_says_busy_in_the_sessions_language(world, stack, runtime, monkeypatch):
    """The database failing under a Kiswahili session: the busy END is in Kiswahili too (it was
    always English when the hop itself failed)."""
    world.learner()
    client = stack[3]
    post(client, "s12", "")
    post(client, "s12", "4")
    post(client, "s12", "4*2")
    post(client, "s12", "4*2*2")  # Kiswahili chosen in this session

    def database_down(*args, **kwargs):
        from sqlalchemy.exc import OperationalError

        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(hop_handler(runtime).services, "start_activation", database_down)
    assert post(client, "s12", "4*2*2*1").startswith("CON Weka")
    post(client, "s12", "4*2*2*1*12345678")
    assert post(client, "s12", "4*2*2*1*12345678*05092014") == BUSY_SW
    assert post(client, "s13", "", phone=STRANGER).startswith("CON Welcome to Elimu")  # a new session: English


def test_session_state_is_one_redis_key_with_a_ttl(stack, runtime):
    client = stack[3]
    post(client, "s7", "")
    post(client, "s7", "4")
    assert runtime.redis.ttl("ussd:s:s7") > 0
    record = SessionStore(runtime.redis, clock=lambda: stack[0]().timestamp(), digest_key=b"k").load("s7")
    assert record is not None and record.hops == 2 and record.state["screen"] == "acct"
    assert not runtime.redis.exists("ussd:lock:s7")


def test_a_hops_lock_outlives_the_providers_wait_for_its_answer(world, stack, runtime, monkeypatch):
    """A slow hop (each statement may take 3 s) still holds its session while AT waits for the
    answer (10 s): a twin of it arriving then waits for that answer instead of acting again."""
    client, handler = stack[3], hop_handler(runtime)
    lived: list[int] = []
    real = handler.engine.start

    def start(*args, **kwargs):  # the menu step of the hop, the lock held
        lived.append(runtime.redis.pttl("ussd:lock:s10"))
        return real(*args, **kwargs)

    monkeypatch.setattr(handler.engine, "start", start)
    post(client, "s10", "")
    assert lived and all(ms > PROVIDER_ANSWER_MS for ms in lived), lived
    assert not runtime.redis.exists("ussd:lock:s10")  # and the hop gave it back


def test_an_unreadable_session_or_resume_point_starts_the_session_afresh(stack, runtime):
    client = stack[3]
    runtime.redis.set("ussd:s:s8", b"\xff not json")
    runtime.redis.set(f"ussd:resume:{PHONE}", b"[1, 2]")  # JSON, but not a saved point
    assert post(client, "s8", "").startswith("CON Welcome to Elimu")
    runtime.redis.set(f"ussd:resume:{PHONE}", b"{broken")
    assert post(client, "s9", "").startswith("CON Welcome to Elimu")


def test_a_record_is_written_as_json_would_write_it_or_not_at_all():
    import json
    from datetime import date

    from gateway.ussd.sessions import SessionRecord

    record = SessionRecord(session_id="s", phone=PHONE, state={"data": {1: "first", "n": True}})
    assert SessionRecord.loads(record.dumps()).state == json.loads(json.dumps(record.state))  # keys "1"
    record.state["data"]["born"] = date(2012, 5, 1)  # not JSON: refused, as json refused it
    with pytest.raises(TypeError):
        record.dumps()


@pytest.mark.parametrize("text", ["", "1*12345678", "4*2*\u00e9", "1*\ud800"])
def test_a_texts_digest_is_its_keyed_sha256_as_stored_before(text):
    """The digest a session record keeps of a hop's text (and checks the next hop's against) is the
    HMAC-SHA256 of session id and text under the key, as it always was: records written before an
    upgrade still match the next hop of their session after it."""
    key = b"k" * 32
    message = f"ATUid_1\x00{text}".encode("utf-8", "replace")
    assert TextDigest(key)("ATUid_1", text) == hmac.new(key, message, hashlib.sha256).hexdigest()[:32]
    assert TextDigest(key)("ATUid_1", text) != TextDigest(b"j" * 32)("ATUid_1", text)
