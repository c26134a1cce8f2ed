"""Attacks on the USSD service found by the security review: what a session's state, a resumed
session or a forged hop must not get past the registry's own checks."""

from __future__ import annotations

import threading
from datetime import date

import orjson
import pytest

from gateway.ussd.routes import hop_handler
from menus.services import PinNeeded, Purpose
from registry.models import AuditEvent, Guardian, GuardianLink, OneTimeCode
from registry.services import accounts
from registry.services.accounts import Keys
from registry.services.ussd_services import RegistryServices
from tests.conftest import TEST_SECRET
from tests.ussd.support import PHONE, PIN, STRANGER

KEYS = Keys.from_secret(TEST_SECRET)


def pin_works(world, clock, pin: str) -> bool:
    with world.db.transaction() as session:
        return accounts.check_pin(session, KEYS, PHONE, pin, clock()).result.value == "ok"


def test_a_reset_resumed_long_after_its_code_sets_no_pin(world, ussd, clock):
    """The reset's ``otp_ok`` lives in the session state, and a resumed session saves it again on
    every dial: redialling every few minutes kept the new-PIN screen open for ever, and the PIN it
    took was set with no code used for an hour. The registry now asks for a reset code used within
    the proof window itself."""
    world.learner()
    world.activate()
    phone = ussd()
    phone.script("dial\n> 4\n> 3\n> 12345678\n> 05092014\n> {otp}\n< CON Choose a new 4-digit PIN:\n< ...")
    for _ in range(3):  # the session drops; the phone redials within the resume window, each time
        clock.advance(minutes=4)
        assert phone.dial().startswith("CON Your last session did not finish.")
        assert phone.send("1").startswith("CON Choose a new 4-digit PIN:")
    phone.send("5803")
    assert phone.send("5803") == "END The code has expired. Dial *384*1234# to get a new one."
    assert pin_works(world, clock, PIN) and not pin_works(world, clock, "5803")


def test_a_reset_within_the_proof_window_sets_the_pin(world, clock):
    world.learner(verified=True)
    world.activate()
    with world.db.transaction() as session:
        assert not accounts.reset_pin(session, KEYS, PHONE, "5803", clock())  # no code used
    assert pin_works(world, clock, PIN)


def pin_state(world) -> tuple:
    with world.db.transaction() as session:
        guardian = session.query(Guardian).filter_by(phone=PHONE).one()
        return guardian.pin_hash, guardian.pin_failures, guardian.pin_locked_until


def change_pin(world, clock, pin: str, session_id: str | None) -> bool:
    with world.db.transaction() as session:
        return accounts.set_pin(session, KEYS, PHONE, pin, session_id, clock())


@pytest.mark.parametrize("session_id", [None, "", "s-other"])
def test_a_pin_change_without_the_current_pin_in_that_session_changes_nothing(world, clock, session_id):
    """``set_pin`` took the menus' ``pin_ok`` on trust: a state saying the PIN was entered (resumed,
    forged) replaced the PIN and cleared its lock. The registry now asks for the current PIN
    entered in that very session; without it, ``PinNeeded`` and the account is as it was."""
    world.learner(verified=True)
    world.activate()
    with world.db.transaction() as session:  # the right PIN, but in another session; a wrong try since
        assert accounts.check_pin(session, KEYS, PHONE, PIN, clock(), "s-owner").result.value == "ok"
        assert accounts.check_pin(session, KEYS, PHONE, "0001", clock()).result.value == "wrong"
    before = pin_state(world)
    with pytest.raises(PinNeeded):
        change_pin(world, clock, "5803", session_id)
    assert pin_state(world) == before and before[1] == 1
    with world.db.session() as session:
        assert session.query(AuditEvent).filter_by(action=accounts.CHANGE_ACTION).count() == 0
    assert pin_works(world, clock, PIN) and not pin_works(world, clock, "5803")


def test_a_pin_change_needs_the_current_pin_within_five_minutes(world, clock):
    world.learner(verified=True)
    world.activate()
    with world.db.transaction() as session:
        assert accounts.check_pin(session, KEYS, PHONE, PIN, clock(), "s-1").result.value == "ok"
    clock.advance(seconds=accounts.PIN_SESSION_VALID.total_seconds() + 1)
    with pytest.raises(PinNeeded):
        change_pin(world, clock, "5803", "s-1")
    assert pin_works(world, clock, PIN) and not pin_works(world, clock, "5803")


def test_a_pin_change_in_the_session_of_the_current_pin_is_made_once(world, clock):
    """The new PIN has been entered in no session: the record of the old one ends with it, so the
    session cannot change the PIN again, nor see learner data, without the new PIN."""
    world.learner(verified=True)
    world.activate()
    with world.db.transaction() as session:
        assert accounts.check_pin(session, KEYS, PHONE, PIN, clock(), "s-1").result.value == "ok"
    clock.advance(minutes=1)
    assert change_pin(world, clock, "5803", "s-1")
    assert pin_works(world, clock, "5803") and not pin_works(world, clock, PIN)
    with world.db.session() as session:  # the change is in the audit trail, once, with no learner
        changes = session.query(AuditEvent).filter_by(action=accounts.CHANGE_ACTION).all()
        assert [(e.phone, e.learner_id, e.channel, e.at.replace(tzinfo=None)) for e in changes] == [
            (PHONE, None, "ussd", clock().replace(tzinfo=None))]
    with pytest.raises(PinNeeded):
        change_pin(world, clock, "6914", "s-1")
    with world.db.transaction() as session, pytest.raises(PinNeeded):
        accounts.my_learners(session, PHONE, "s-1", clock())


def test_a_pin_change_for_an_inactive_account_is_refused(world, clock):
    world.learner()
    assert not change_pin(world, clock, "5803", "s-1")


def test_an_activation_code_does_not_replace_an_active_accounts_pin(world, clock):
    """``activate`` took a new PIN from whatever state asked, so an activation code for any learner
    linked to the phone (one a school linked, never verified here) replaced an active account's
    PIN: a reset without the current PIN and without a verified learner's details. The learner is
    added (in the session that entered the PIN) and the PIN kept."""
    first = world.learner(verified=True)
    world.activate()
    other = world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None)
    with world.db.transaction() as session:
        assert accounts.check_pin(session, KEYS, PHONE, PIN, clock(), "s").result.value == "ok"
        found = accounts.start_activation(session, KEYS, PHONE, "777", date(2014, 9, 5), clock(), session_id="s")
        assert found.learner_id == other
    with world.db.transaction() as session:
        session.get(OneTimeCode, latest_code_id(session)).used_at = clock()
        assert accounts.activate(session, KEYS, PHONE, other, "5937", "s", clock())
    assert pin_works(world, clock, PIN) and not pin_works(world, clock, "5937")
    with world.db.transaction() as session:
        assert accounts.check_pin(session, KEYS, PHONE, PIN, clock(), "s").result.value == "ok"
        assert {c.learner_id for c in accounts.my_learners(session, PHONE, "s", clock())} == {first, other}


def latest_code_id(session) -> int:
    return session.query(OneTimeCode.id).order_by(OneTimeCode.id.desc()).limit(1).scalar()


def test_pin_locks_grow_so_the_pin_cannot_be_guessed_at_leisure(world, clock):
    """3 wrong PINs locked PIN use for 30 minutes and cleared the count, for ever: 144 guesses a
    day from the phone, every 4-digit PIN within ten weeks. Each lock in a row now lasts twice the
    one before, up to a day; a right PIN starts the count again."""
    world.learner(verified=True)
    world.activate()

    def check(pin: str):
        with world.db.transaction() as session:
            return accounts.check_pin(session, KEYS, PHONE, pin, clock())

    def three_wrong() -> int:
        results = [check(pin) for pin in ("0001", "0002", "0003")]
        assert [r.result.value for r in results[:2]] == ["wrong", "wrong"]
        return results[-1].locked_minutes

    locks = []
    for _ in range(8):
        locks.append(three_wrong())
        clock.advance(minutes=locks[-1])
    assert locks == [30, 60, 120, 240, 480, 960, 1440, 1440]
    assert check("0004").result.value == "wrong"
    assert check(PIN).result.value == "ok"  # and the count starts again
    assert three_wrong() == 30


def test_another_phone_naming_a_busy_session_gets_no_answer_of_it(world, stack, runtime):
    """A hop that finds its session's lock taken waits for the twin's answer and returned it
    without asking whose session it was: another phone that sent the same session id and text
    while the owner's hop ran was handed the owner's screen, here a learner's status. It now gets
    the busy answer and the owner alone sees the status."""
    world.learner(verified=True)
    world.activate()
    client = stack[3]
    for text in ("", "3"):
        hop(client, "s-busy", text, PHONE)
    handler = hop_handler(runtime)
    inside, waiting = threading.Event(), threading.Event()
    real_status, real_wait = handler.services.learner_status, handler.store.wait_for_answer

    def slow_status(*args, **kwargs):
        inside.set()
        assert waiting.wait(10), "the other phone's hop never waited"
        return real_status(*args, **kwargs)

    def wait_for_answer(*args, **kwargs):
        waiting.set()
        return real_wait(*args, **kwargs)

    handler.services.learner_status, handler.store.wait_for_answer = slow_status, wait_for_answer
    answers: dict[str, str] = {}

    def run(phone: str) -> None:
        answers[phone] = hop(client.application.test_client(), "s-busy", f"3*{PIN}", phone)

    owner = threading.Thread(target=run, args=(PHONE,))
    owner.start()
    assert inside.wait(10)
    other = threading.Thread(target=run, args=(STRANGER,))
    other.start()
    owner.join(10)
    other.join(10)
    assert answers[PHONE].startswith("END Jane W.")
    assert "Jane" not in answers[STRANGER] and answers[STRANGER].startswith("END ")


def hop(client, session_id: str, text: str, phone: str) -> str:
    response = client.post("/ussd/africastalking", data={"sessionId": session_id, "phoneNumber": phone,
                                                        "serviceCode": "*384*1234#", "text": text})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_a_reset_code_sets_one_pin_however_many_sessions_reached_its_new_pin_screen(world, stack, sms, clock):
    """Two sessions of the phone past one reset code (the first dropped on 'Choose a new PIN' and
    was resumed, its provider session still open, or its hops replayed): the first reset spends the
    code, and the other session's new PIN is refused; a second reset needs a new code."""
    world.learner()
    world.activate()
    client = stack[3]
    steps = ["", "4", "4*3", "4*3*12345678", "4*3*12345678*05092014"]
    for text in steps:
        hop(client, "s-first", text, PHONE)
    otp = sms.last_otp(PHONE)
    assert hop(client, "s-first", f"{steps[-1]}*{otp}", PHONE).startswith("CON Choose a new 4-digit PIN:")
    assert hop(client, "s-second", "", PHONE).startswith("CON Your last session did not finish.")
    assert hop(client, "s-second", "1", PHONE).startswith("CON Choose a new 4-digit PIN:")
    hop(client, "s-second", "1*5803", PHONE)
    assert hop(client, "s-second", "1*5803*5803", PHONE).startswith("END Your PIN has been reset.")
    clock.advance(minutes=1)
    hop(client, "s-first", f"{steps[-1]}*{otp}*6914", PHONE)
    assert hop(client, "s-first", f"{steps[-1]}*{otp}*6914*6914", PHONE) == (
        "END The code has expired. Dial *384*1234# to get a new one.")
    assert pin_works(world, clock, "5803") and not pin_works(world, clock, "6914")


WAIT = "END A code was sent less than a minute ago. Wait a minute, then dial *384*1234# again."


@pytest.mark.parametrize("flow", ["1", "4*3"])
def test_details_tried_within_the_minute_of_a_code_are_counted_as_misses(real_stack, real_ussd, flow):
    """Within the minute of an activation (or reset) code, the details of its learner bring back the
    code screen and any others were told to wait, not counted: whoever held the phone could try
    dates of birth (or numbers) for that learner without limit, 'still good' telling the right one.
    Details matching no learner now count as misses as at any other time (still told to wait), so
    the daily limit of ten holds and after it even the right details only wait."""
    _, sms, world, _ = real_stack
    world.learner()
    if flow == "4*3":
        world.activate()
    phone = real_ussd()
    steps = flow.split("*")
    phone.script("dial\n" + "".join(f"> {s}\n" for s in steps) + "> 12345678\n> 05092014\n< CON We sent\n< ...")
    for day in range(11, 11 + accounts.MISSES_PER_DAY):  # wrong dates of birth for Jane, new dials
        phone.script("redial\n" + "".join(f"> {s}\n" for s in steps) + f"> 12345678\n> {day:02d}092014\n< {WAIT}")
    with world.db.session() as session:
        assert session.query(AuditEvent).filter_by(action=accounts.MISS_ACTION).count() == accounts.MISSES_PER_DAY
    phone.script("redial\n" + "".join(f"> {s}\n" for s in steps) + f"> 12345678\n> 05092014\n< {WAIT}")
    assert len(sms.otps(PHONE)) == 1


def _state_data(redis, session_id: str) -> dict:
    """The menu data of a session's state as the gateway keeps it in Redis."""
    return orjson.loads(redis.get(f"ussd:s:{session_id}"))["state"]["data"]


def test_the_kept_status_goes_to_its_own_session_only(real_stack, integration_runtime):
    """A parent of several reads a status (kept in the session's state in Redis while shown): another
    phone naming that session id, with text that adds up or not, is busy and sees nothing of it; a
    new dial of the phone is offered no resume; 0 and 00 remove the text from the state."""
    _, _, world, client = real_stack
    world.learner(verified=True)
    world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None, verified=True)
    world.activate()
    redis = integration_runtime.redis
    for text in ("", "3", f"3*{PIN}"):
        hop(client, "s-status", text, PHONE)
    assert hop(client, "s-status", f"3*{PIN}*1", PHONE).startswith("CON Brian O. (Grade 6)")
    assert "status_shown" in _state_data(redis, "s-status")
    for text in (f"3*{PIN}*1*0", "9*9", ""):
        answer = hop(client, "s-status", text, STRANGER)
        assert answer.startswith("END ") and "Brian" not in answer and "Kilimani" not in answer
    assert hop(client, "s-other", "", PHONE).startswith("CON Welcome to Elimu")  # no resume offer
    assert "Brian" not in str(_state_data(redis, "s-other"))
    # its own phone, with text that does not add up: the screen as shown (that text is the new base)
    assert hop(client, "s-status", "7", PHONE).startswith("CON Brian O.")
    assert hop(client, "s-status", "7*0", PHONE).startswith("CON Choose a learner:")
    assert "status_shown" not in _state_data(redis, "s-status")
    assert hop(client, "s-status", "7*0*2", PHONE).startswith("CON Jane W.")
    assert hop(client, "s-status", "7*0*2*00", PHONE).startswith("CON Welcome to Elimu")
    assert _state_data(redis, "s-status") == {}


def test_a_long_session_id_does_not_share_another_sessions_pin(real_stack):
    """The record of where the PIN was entered kept a session id's first 100 characters, though a
    provider's ids may be up to 200 long: two sessions of the phone whose ids share their first 100
    (a provider's long fixed prefix) shared the PIN, so a new dial, continuing the first session's
    code screen and pressing 0, was shown the learner list without entering the PIN."""
    _, _, world, client = real_stack
    jane = world.learner(verified=True)
    world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None, verified=True)
    world.activate()
    prefix = "X" * 100
    first, second = prefix + "-first-" + "1" * 40, prefix + "-second-" + "2" * 40
    for text in ("", "2", f"2*{PIN}"):
        hop(client, first, text, PHONE)
    assert hop(client, first, f"2*{PIN}*1", PHONE).startswith("CON We sent a 6-digit code")
    assert hop(client, second, "", PHONE).startswith("CON Your last session did not finish.")
    assert hop(client, second, "1", PHONE).startswith("CON We sent a 6-digit code")
    answer = hop(client, second, "1*0", PHONE)
    assert answer.startswith("CON Enter your 4-digit PIN:") and "Jane" not in answer and "Brian" not in answer
    with world.db.transaction() as session, pytest.raises(PinNeeded):
        accounts.learner_status(session, PHONE, jane, second, real_stack[0]())


# --- a resumed session's code screen: the UPI and an added learner need this session's PIN --------

PIN_SCREEN = {"en": "CON Enter your 4-digit PIN:\n0. Back\n00. Home",
              "sw": "CON Weka PIN yako ya tarakimu 4:\n0. Rudi\n00. Mwanzo"}
CODE_SCREEN = {"en": "CON We sent a 6-digit code by SMS. Enter it:",
               "sw": "CON Tumekutumia msimbo wa tarakimu 6 kwa SMS. Uweke:"}
RESUME = {"en": "CON Your last session did not finish.", "sw": "CON Hukumaliza ulichokuwa ukifanya mara ya mwisho."}


def _code_row(world) -> tuple:
    with world.db.session() as session:
        code = session.query(OneTimeCode).order_by(OneTimeCode.id.desc()).first()
        return code.used_at, code.attempts


def _resumed_on_the_code_screen(phone, lang: str, steps: str) -> str:
    """``steps`` in one session (its code sent), then a new dial continuing it; the code typed there."""
    if lang == "sw":
        phone.script("dial\n> 4\n> 2\n> 2")
    phone.script(f"dial\n{steps}\n< {CODE_SCREEN[lang]}\n< ...")
    assert phone.dial().startswith(RESUME[lang])
    assert phone.send("1").startswith(CODE_SCREEN[lang])
    return phone.send("{otp}")


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_resumed_upi_code_screen_sends_the_upi_only_after_the_pin(real_stack, real_ussd, lang):
    """The UPI code screen, continued in a new dial within 5 minutes: whoever held the phone entered
    the code from the SMS and the UPI was sent, the closing screen naming the learner, without the
    PIN (``send_upi`` asked no PIN of the session). Now the code is refused to a session without its
    own PIN before it is checked (left unused, no try counted): the PIN screen comes, and after the
    right PIN the code screen, where the same code sends the UPI."""
    _, sms, world, _ = real_stack
    world.learner(verified=True)
    world.activate()
    phone = real_ussd()
    answer = _resumed_on_the_code_screen(phone, lang, f"> 2\n> {PIN}")
    assert answer == PIN_SCREEN[lang]
    assert not any("A1B2C3" in body for body in sms.clear_bodies(PHONE))
    assert _code_row(world) == (None, 0)
    with world.db.session() as session:
        assert session.query(AuditEvent).filter_by(action="upi_sent").count() == 0
    assert phone.send(PIN).startswith(CODE_SCREEN[lang])
    assert phone.send("{otp}") == {"en": "END The UPI of Jane W. will come by SMS.",
                                   "sw": "END UPI ya Jane W. itakuja kwa SMS."}[lang]
    assert "A1B2C3" in sms.clear_bodies(PHONE)[-1] and len(sms.otps(PHONE)) == 1


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_a_resumed_adding_code_screen_adds_the_learner_only_after_the_pin(real_stack, real_ussd, lang):
    """Adding a learner to an active account, continued in a new dial on the code screen: the code
    from the SMS added the learner and sent its UPI without the PIN (the menus' ``pin_ok`` came with
    the saved state, and ``activate`` asked no PIN of the session). Now the PIN first, the code left
    good, then the same code adds the learner."""
    _, sms, world, _ = real_stack
    world.learner(verified=True)
    world.activate()
    brian = world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None)
    phone = real_ussd()
    answer = _resumed_on_the_code_screen(phone, lang, f"> 1\n> {PIN}\n> 777\n> 05092014")
    assert answer == PIN_SCREEN[lang]
    assert not any("B7K9M2" in body for body in sms.clear_bodies(PHONE))
    assert _code_row(world) == (None, 0)
    with world.db.session() as session:
        assert session.query(GuardianLink).filter_by(learner_id=brian).one().verified_at is None
    assert phone.send(PIN).startswith(CODE_SCREEN[lang])
    assert phone.send("{otp}") == {
        "en": "END Learner added to your account. The UPI will come by SMS.",
        "sw": "END Mwanafunzi ameongezwa kwenye akaunti yako. UPI itakuja kwa SMS."}[lang]
    assert "B7K9M2" in sms.clear_bodies(PHONE)[-1] and len(sms.otps(PHONE)) == 1
    with world.db.session() as session:
        assert session.query(GuardianLink).filter_by(learner_id=brian).one().verified_at is not None


DOB_SCREEN = {"en": "CON Enter the learner's date of birth (DDMMYYYY):",
              "sw": "CON Weka tarehe ya kuzaliwa ya mwanafunzi (DDMMYYYY):"}


@pytest.mark.parametrize("lang", ["en", "sw"])
def test_resumed_adding_details_send_no_code_before_the_pin(real_stack, real_ussd, lang):
    """Adding a learner, dropped on the date-of-birth screen and continued in a new dial: the details
    had a code sent to an active account without this session's PIN (``start_activation`` asked
    none; the menus' ``pin_ok`` came with the saved state), and tried them against the learners.
    Now the registry refuses first (no code, no miss counted), the PIN screen comes, and after the
    right PIN the date of birth again, the identifier kept, sends the code."""
    _, sms, world, _ = real_stack
    world.learner(verified=True)
    world.activate()
    world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None)
    phone = real_ussd()
    if lang == "sw":
        phone.script("dial\n> 4\n> 2\n> 2")
    phone.script(f"dial\n> 1\n> {PIN}\n> 777\n< {DOB_SCREEN[lang]}\n< ...")
    assert phone.dial().startswith(RESUME[lang])
    assert phone.send("1").startswith(DOB_SCREEN[lang])
    assert phone.send("05092014") == PIN_SCREEN[lang]
    assert sms.otps(PHONE) == []
    with world.db.session() as session:
        assert session.query(OneTimeCode).count() == 0
        assert session.query(AuditEvent).filter_by(action=accounts.MISS_ACTION).count() == 0
    assert phone.send(PIN).startswith(DOB_SCREEN[lang])
    assert phone.send("05092014").startswith(CODE_SCREEN[lang])
    assert len(sms.otps(PHONE)) == 1
    assert phone.send("{otp}").startswith({"en": "END Learner added", "sw": "END Mwanafunzi ameongezwa"}[lang])


def test_start_activation_of_an_active_account_needs_the_sessions_pin(world, clock):
    """The registry's own check, whatever the menus' state says: adding a learner to an active
    account needs the PIN in this session; a first activation and a PIN reset need none."""
    world.learner(verified=True)
    world.activate()
    services = RegistryServices(world.db, KEYS, clock)
    with pytest.raises(PinNeeded):
        services.start_activation(PHONE, "12345678", date(2014, 9, 5), "s-no-pin")
    with pytest.raises(PinNeeded):
        services.start_activation(PHONE, "12345678", date(2014, 9, 5))
    assert services.start_pin_reset(PHONE, "12345678", date(2014, 9, 5)).learner_id is not None
    assert services.check_pin(PHONE, PIN, "s-pin").result.value == "ok"
    clock.advance(minutes=2)
    assert services.start_activation(PHONE, "12345678", date(2014, 9, 5), "s-pin").learner_id is not None


def _used_code(world, clock, purpose: Purpose, learner_id: int) -> None:
    with world.db.transaction() as session:
        session.add(OneTimeCode(phone=PHONE, purpose=purpose.value, learner_id=learner_id, code_hash="used",
                                expires_at=clock(), attempts=0, used_at=clock(), created_at=clock(),
                                updated_at=clock()))


def _nothing_sent(world, sms) -> bool:
    with world.db.session() as session:
        audited = session.query(AuditEvent).filter(AuditEvent.action.in_(["upi_sent"])).count()
    return audited == 0 and sms.messages(PHONE) == []


def test_send_upi_needs_the_pin_of_its_session_and_sends_nothing_without(world, clock, sms):
    """A used UPI code is not enough: the UPI goes only to the session that entered the PIN."""
    jane = world.learner(verified=True)
    world.activate()
    _used_code(world, clock, Purpose.UPI, jane)
    for session_id in ("s-new", None):
        with world.db.transaction() as session, pytest.raises(PinNeeded):
            accounts.send_upi(session, PHONE, jane, session_id or "", clock())
    assert _nothing_sent(world, sms)
    with world.db.transaction() as session:
        assert accounts.check_pin(session, KEYS, PHONE, PIN, clock(), "s-pin").result.value == "ok"
        with pytest.raises(PinNeeded):
            accounts.send_upi(session, PHONE, jane, "s-new", clock())
        assert accounts.send_upi(session, PHONE, jane, "s-pin", clock())
    assert "A1B2C3" in sms.clear_bodies(PHONE)[-1]


def test_adding_a_learner_needs_the_pin_of_its_session_and_changes_nothing_without(world, clock, sms):
    """A used activation code adds a learner to an active account only for the session that entered
    the PIN: without it, no link verified, no PIN changed, no UPI sent."""
    world.learner(verified=True)
    world.activate()
    brian = world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None)
    _used_code(world, clock, Purpose.ACTIVATE, brian)
    for pin in (None, "5937"):
        with world.db.transaction() as session, pytest.raises(PinNeeded):
            accounts.activate(session, KEYS, PHONE, brian, pin, "s-new", clock())
    assert _nothing_sent(world, sms) and pin_works(world, clock, PIN)
    with world.db.session() as session:
        assert session.query(GuardianLink).filter_by(learner_id=brian).one().verified_at is None
    with world.db.transaction() as session:
        assert accounts.check_pin(session, KEYS, PHONE, PIN, clock(), "s-pin").result.value == "ok"
        assert accounts.activate(session, KEYS, PHONE, brian, None, "s-pin", clock())
    assert "B7K9M2" in sms.clear_bodies(PHONE)[-1] and pin_works(world, clock, PIN)


@pytest.mark.parametrize("purpose", [Purpose.UPI, Purpose.ACTIVATE])
def test_a_code_leading_to_learner_data_is_left_untouched_for_a_session_without_the_pin(
        world, clock, monkeypatch, purpose):
    """A UPI code, and an activation code of an active account, are checked only for the session
    that entered the PIN: refused before the check, the code keeps its tries and stays good."""
    jane = world.learner(verified=True)
    world.activate()
    brian = world.learner(first="Brian", last="Otieno", upi="B7K9M2", birth_cert="777", assessment=None)
    learner = jane if purpose is Purpose.UPI else brian
    monkeypatch.setattr(accounts, "generate_otp", lambda: "314159")
    services = RegistryServices(world.db, KEYS, clock=clock)
    with world.db.transaction() as session:
        assert accounts.issue_otp(session, KEYS, PHONE, purpose, clock(), learner).value == "sent"
    for code in ("314159", "000000"):
        with pytest.raises(PinNeeded):
            services.check_otp(PHONE, purpose, code, learner, "s-new")
    assert _code_row(world) == (None, 0)
    assert services.check_pin(PHONE, PIN, "s-pin").result.value == "ok"
    assert services.check_otp(PHONE, purpose, "314159", learner, "s-pin").result.value == "ok"
