"""Registry accounts without the menus: hashing, PIN policy, code limits and checks, disclosure guards.

Runs on SQLite and PostgreSQL (``database`` fixture)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime, timedelta

import pytest

from menus.services import ActivationResult, OtpResult, PinNeeded, PinResult, Purpose, SendResult
from registry.models import AuditEvent, OneTimeCode
from registry.models.accounts import PinSession
from registry.services import accounts
from registry.services.accounts import Keys
from registry.services.secrets import OtpHasher, PinHasher, derive_key, generate_otp, pin_is_trivial
from registry.services.ussd_services import RegistryServices
from registry.signals import otp_event
from tests.conftest import TEST_SECRET
from tests.pg_waits import Behind
from tests.ussd.support import PHONE, STRANGER, World

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
KEYS = Keys.from_secret(TEST_SECRET)


def test_otp_hashes_are_salted_keyed_and_checked():
    hasher = OtpHasher(TEST_SECRET)
    first, second = hasher.hash("042917"), hasher.hash("042917")
    assert first != second and "042917" not in first and first.startswith("scrypt:10:8:1$")
    assert hasher.verify(first, "042917") and not hasher.verify(first, "042918")
    assert not OtpHasher("another-secret-key-0123456789").verify(first, "042917")
    assert not hasher.verify("garbage", "042917") and not hasher.verify("scrypt:10:8:1$zz$zz", "042917")
    _, salt, digest = first.split("$")
    for scheme in ("md5", "scrypt:10:8", "scrypt:x:8:1", "scrypt:20:8:1", "scrypt:10:8:2", "argon2:10:8:1"):
        assert not hasher.verify(f"{scheme}${salt}${digest}", "042917"), scheme
    assert not hasher.verify(f"scrypt:10:8:1${salt[:-2]}${digest}", "042917")  # nor a short salt
    # the parameters are read from the stored hash: the same code under other ones is not a match
    assert not hasher.verify(f"scrypt:11:8:1${salt}${digest}", "042917")


def test_codes_hashed_before_the_parameters_were_stored_still_verify():
    """Codes stored as plain ``scrypt$`` (n=4096, until 2026-12-04) stay good for the minutes they have left."""
    salt = bytes(range(16))
    peppered = hmac.new(derive_key(TEST_SECRET, "otp"), b"042917", hashlib.sha256).digest()
    stored = f"scrypt${salt.hex()}${hashlib.scrypt(peppered, salt=salt, n=4096, r=8, p=1, dklen=32).hex()}"
    hasher = OtpHasher(TEST_SECRET)
    assert hasher.verify(stored, "042917") and not hasher.verify(stored, "042918")
    assert not OtpHasher("another-secret-key-0123456789").verify(stored, "042917")


def test_pins_use_argon2id_with_a_pepper():
    hasher = PinHasher(TEST_SECRET)
    stored = hasher.hash("5821")
    assert stored.startswith("$argon2id$") and hasher.verify(stored, "5821") and not hasher.verify(stored, "5822")
    assert not PinHasher("another-secret-key-0123456789").verify(stored, "5821")
    assert not hasher.verify(None, "5821") and not hasher.verify("not a hash", "5821")
    sealed = hasher.seal("5821")
    assert "5821" not in sealed and hasher.seal_matches(sealed, "5821") and not hasher.seal_matches(sealed, "5812")
    assert not hasher.seal_matches("nonsense", "5821")


def test_generated_codes_are_six_digits():
    codes = {generate_otp() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes) and len(codes) > 150


@pytest.mark.parametrize("pin", ["0000", "1111", "9999", "1234", "4321", "0123", "9876", "6789", "3210", "1212",
                                 "1122", "2000", "6969", "12a4", "123"])
def test_trivial_pins_are_refused(pin):
    assert pin_is_trivial(pin)


@pytest.mark.parametrize("pin", ["4826", "5803", "7391", "2580", "0918"])
def test_ordinary_pins_are_accepted(pin):
    assert not pin_is_trivial(pin)


def test_personal_pins_are_refused():
    assert pin_is_trivial("0905", {"0509", "0905"}) and pin_is_trivial("0509", {"0509", "0905"})


@pytest.mark.parametrize("pin", ["1900", "1987", "2009", "2014", "2031", "2099"])
def test_every_year_is_refused_so_none_tells_a_birth_year(pin):
    """Only the learners' birth years were refused, so each refusal of a year named one."""
    assert pin_is_trivial(pin)


@pytest.mark.parametrize("pin", ["1899", "2100", "0918", "2580"])
def test_numbers_beside_the_years_are_accepted(pin):
    assert not pin_is_trivial(pin)


@pytest.fixture
def world(database):
    return World(database, TEST_SECRET)


def codes_sent(db, now: datetime, count: int, phone: str = PHONE) -> list[SendResult]:
    results = []
    for i in range(count):
        with db.transaction() as session:
            results.append(accounts.issue_otp(session, KEYS, phone, Purpose.PIN_RESET, now + timedelta(seconds=61 * i)))
    return results


def test_code_limits_gap_hour_day(world):
    db = world.db
    with db.transaction() as session:
        assert accounts.issue_otp(session, KEYS, PHONE, Purpose.UPI, NOW) is SendResult.SENT
        assert accounts.issue_otp(session, KEYS, PHONE, Purpose.UPI, NOW + timedelta(seconds=59)) is SendResult.TOO_SOON
    assert codes_sent(db, NOW + timedelta(seconds=60), 5) == [SendResult.SENT] * 4 + [SendResult.LIMIT]
    assert codes_sent(db, NOW + timedelta(hours=1, seconds=1), 6) == [SendResult.SENT] * 5 + [SendResult.LIMIT]
    assert codes_sent(db, NOW + timedelta(hours=3), 1) == [SendResult.LIMIT]  # 10 today
    assert codes_sent(db, NOW + timedelta(days=1, seconds=1), 1) == [SendResult.SENT]
    assert codes_sent(db, NOW, 1, phone=STRANGER) == [SendResult.SENT]  # per phone


@pytest.mark.parametrize("first", ["activation", "code"])
def test_two_code_requests_for_one_phone_at_once_send_one_code(database, first):
    """Two requests for one phone at once (a callback sent twice, a burst of forged ones): the
    second waits for the first's transaction and then finds its code, so the send limits hold.
    Without the phone's sending lock each would pass them, blind to the other's uncommitted code."""
    world = World(database, TEST_SECRET)
    world.learner()

    def activation(session):
        return accounts.start_activation(session, KEYS, PHONE, "12345678", date(2014, 9, 5), NOW).result

    def code(session):
        return accounts.issue_otp(session, KEYS, PHONE, Purpose.UPI, NOW)

    calls = {"activation": activation, "code": code}
    second_name = "code" if first == "activation" else "activation"
    results: dict[str, object] = {}
    with database.transaction() as session:
        results["first"] = calls[first](session)
        # the second request, in its own transaction, is seen waiting for this one before it ends: on
        # PostgreSQL for the phone's lock, as PostgreSQL reports; on SQLite for the database's write
        # lock, which this one holds, as it starts a write (its lock; without one, its first write
        # is its code, after reads of the codes that missed this one's)
        second = Behind(database, calls[second_name])
    results["second"] = second.result()
    sent = {"activation": ActivationResult.MATCH, "code": SendResult.SENT}
    too_soon = {"activation": ActivationResult.TOO_SOON, "code": SendResult.TOO_SOON}
    assert results == {"first": sent[first], "second": too_soon[second_name]}
    with database.session() as session:
        assert session.query(OneTimeCode).count() == 1


def latest_code(db) -> OneTimeCode:
    with db.transaction() as session:
        return session.query(OneTimeCode).order_by(OneTimeCode.id.desc()).first()


def test_codes_are_single_use_limited_and_expire(world, monkeypatch):
    db = world.db
    monkeypatch.setattr(accounts, "generate_otp", lambda: "314159")
    with db.transaction() as session:
        accounts.issue_otp(session, KEYS, PHONE, Purpose.PIN_RESET, NOW)
    assert "314159" not in latest_code(db).code_hash

    def check(code: str, at: datetime = NOW) -> OtpResult:
        with db.transaction() as session:
            return accounts.check_otp(session, KEYS, PHONE, Purpose.PIN_RESET, code, at).result

    assert check("314159", NOW) is OtpResult.OK
    assert check("314159") is OtpResult.EXPIRED  # used
    with db.transaction() as session:
        accounts.issue_otp(session, KEYS, PHONE, Purpose.PIN_RESET, NOW + timedelta(minutes=2))
    assert [check("000000"), check("000001"), check("000002"), check("314159")] == [
        OtpResult.WRONG, OtpResult.WRONG, OtpResult.EXHAUSTED, OtpResult.EXHAUSTED]
    with db.transaction() as session:
        accounts.issue_otp(session, KEYS, PHONE, Purpose.PIN_RESET, NOW + timedelta(minutes=4))
    assert check("314159", NOW + timedelta(minutes=9, seconds=1)) is OtpResult.EXPIRED
    assert check("314159", NOW + timedelta(minutes=8, seconds=59)) is OtpResult.OK


def test_activation_matches_only_this_phones_learner(world):
    world.learner()
    world.learner(first="Otieno", upi="Z9Y8X7", birth_cert="99990000", assessment=None, phones=(STRANGER,))
    db = world.db

    def attempt(identifier: str, born: date, phone: str = PHONE, at: datetime = NOW) -> ActivationResult:
        with db.transaction() as session:
            return accounts.start_activation(session, KEYS, phone, identifier, born, at).result

    assert attempt("99990000", date(2014, 9, 5)) is ActivationResult.MISS
    assert attempt("12345678", date(2014, 9, 6)) is ActivationResult.MISS
    assert attempt("12345678", date(2014, 9, 5)) is ActivationResult.MATCH
    events: list[str] = []
    otp_event.connect(receiver := lambda event: events.append(event), weak=False)
    try:
        assert attempt("99990000", date(2014, 9, 5), at=NOW + timedelta(seconds=10)) is ActivationResult.TOO_SOON
        # the same details: the code sent is still good (no second one)
        assert attempt("12345678", date(2014, 9, 5), at=NOW + timedelta(seconds=10)) is ActivationResult.STILL_GOOD
    finally:
        otp_event.disconnect(receiver)
    assert events == ["limited"] * 2  # the code's metrics count a refused activation as a refused code
    assert attempt("12345678", date(2014, 9, 5), phone="+254799000000") is ActivationResult.NOT_LINKED


def test_activation_matches_any_of_a_learners_numbers_among_several_learners(world):
    """The learners linked to a phone are read with their results joined: a learner with two
    results, one with none, and every number of each, all found."""
    first = world.learner()
    world.result(first, "KCPE", 2023, "36611030002")
    world.result(first, "KCSE", 2025, "19301012001")
    second = world.learner(first="Brian", upi="B7K9M2", birth_cert="777", assessment=None)
    db = world.db

    def matched(identifier: str, born: date) -> int | None:
        with db.transaction() as session:
            learner = accounts.match_learner(session, PHONE, identifier, born)
            return learner.id if learner else None

    for number in ("12345678", "36611030002", "19301012001"):
        assert matched(number, date(2014, 9, 5)) == first, number
    assert matched("777", date(2014, 9, 5)) == second
    assert matched("19301012001", date(2014, 9, 6)) is None
    assert matched("99999999", date(2014, 9, 5)) is None


def test_disclosures_need_a_used_code_and_a_verified_link(world):
    learner = world.learner()
    db = world.db
    with db.transaction() as session:
        assert not accounts.activate(session, KEYS, PHONE, learner, "4826", "s", NOW)
        assert not accounts.send_upi(session, PHONE, learner, "s", NOW)
        assert accounts.learner_status(session, PHONE, learner, "s", NOW) is None
        assert accounts.my_learners(session, PHONE, "s", NOW) == []


def test_pin_lock_after_three_wrong_tries(world):
    world.learner(verified=True)
    world.activate(pin="4826")
    db = world.db

    def check(pin: str, at: datetime = NOW):
        with db.transaction() as session:
            return accounts.check_pin(session, KEYS, PHONE, pin, at)

    assert [check("1111").tries_left, check("2222").tries_left] == [2, 1]
    assert check("3333").result is PinResult.LOCKED_NOW
    locked = check("4826", NOW + timedelta(minutes=29))
    assert (locked.result, locked.locked_minutes) == (PinResult.LOCKED, 1)
    assert check("4826", NOW + timedelta(minutes=30)).result is PinResult.OK
    with db.transaction() as session:
        assert accounts.check_pin(session, KEYS, STRANGER, "4826", NOW).result is PinResult.INACTIVE


# --- a right PIN opens learner data to its own session only (``PinSession``) -----------------------


def _pin(world, session_id: str | None, at: datetime = NOW, pin: str = "4826") -> PinResult:
    with world.db.transaction() as session:
        return accounts.check_pin(session, KEYS, PHONE, pin, at, session_id).result


def _status(world, session_id: str, at: datetime = NOW):
    with world.db.transaction() as session:
        return accounts.learner_status(session, PHONE, world.learner_id, session_id, at)


def _learners(world, session_id: str, at: datetime = NOW) -> list[int]:
    with world.db.transaction() as session:
        return [c.learner_id for c in accounts.my_learners(session, PHONE, session_id, at)]


def _services(world) -> RegistryServices:
    return RegistryServices(world.db, KEYS, clock=lambda: NOW)


def _audited(world) -> int:
    with world.db.transaction() as session:
        return session.query(AuditEvent).filter_by(action="status_shown").count()


@pytest.fixture
def pinned(world):
    world.learner_id = world.learner(verified=True)
    world.activate(pin="4826")
    return world


def test_learner_data_is_refused_without_a_pin_entered_in_the_session(pinned):
    with pytest.raises(PinNeeded):
        _status(pinned, "ATUid_1")
    with pytest.raises(PinNeeded):
        _learners(pinned, "ATUid_1")
    with pytest.raises(PinNeeded):
        _services(pinned).send_otp(PHONE, Purpose.UPI, pinned.learner_id, "ATUid_1")
    assert _pin(pinned, "ATUid_1", pin="1111") is PinResult.WRONG  # a wrong PIN opens nothing
    with pytest.raises(PinNeeded):
        _status(pinned, "ATUid_1")
    assert _audited(pinned) == 0


def test_learner_data_is_shown_to_the_session_that_entered_the_pin(pinned):
    assert _pin(pinned, "ATUid_1") is PinResult.OK
    assert _learners(pinned, "ATUid_1") == [pinned.learner_id]
    assert _status(pinned, "ATUid_1", NOW + timedelta(minutes=4)).school == "Kilimani Primary School"
    sent = _services(pinned).send_otp(PHONE, Purpose.UPI, pinned.learner_id, "ATUid_1")
    assert sent is SendResult.SENT and _audited(pinned) == 1


def test_the_list_of_learners_is_audited_as_shown(pinned):
    """The list shows each learner's masked name and grade: a disclosure, in the trail like the status
    (one learner is not listed: the menus go on to its status or UPI, audited on their own)."""
    other = pinned.learner(first="Brian", verified=True, upi="B7K9M2", birth_cert="777")
    with pytest.raises(PinNeeded):
        _learners(pinned, "ATUid_1")
    assert _pin(pinned, "ATUid_1") is PinResult.OK
    assert sorted(_learners(pinned, "ATUid_1")) == sorted([pinned.learner_id, other])
    with pinned.db.transaction() as session:
        rows = session.query(AuditEvent).filter_by(action=accounts.LISTED_ACTION).all()
        assert sorted((r.learner_id, r.phone, r.channel, r.reference) for r in rows) == sorted(
            (learner_id, PHONE, "ussd", "ATUid_1") for learner_id in (pinned.learner_id, other))


def test_another_sessions_or_an_expired_pin_is_refused(pinned):
    assert _pin(pinned, "ATUid_1") is PinResult.OK
    with pytest.raises(PinNeeded):
        _status(pinned, "ATUid_2")  # a resumed state, a new dial: its own PIN first
    with pytest.raises(PinNeeded):
        _learners(pinned, "ATUid_1", NOW + accounts.PIN_SESSION_VALID)
    assert _pin(pinned, "ATUid_2", NOW + timedelta(minutes=1)) is PinResult.OK
    assert _status(pinned, "ATUid_2", NOW + timedelta(minutes=1)) is not None
    with pytest.raises(PinNeeded):
        _status(pinned, "ATUid_1", NOW + timedelta(minutes=1))  # one session at a time per account
    with pinned.db.transaction() as session:
        assert session.query(PinSession).count() == 1  # replaced, not added to
    assert _audited(pinned) == 1


def test_another_phones_pin_opens_nothing(pinned):
    pinned.learner(first="Brian", phones=(STRANGER,), verified=True, upi="B7K9M2", birth_cert="777")
    pinned.activate(phone=STRANGER, pin="5937")
    with pinned.db.transaction() as session:
        assert accounts.check_pin(session, KEYS, STRANGER, "5937", NOW, "ATUid_1").result is PinResult.OK
    with pytest.raises(PinNeeded):
        _status(pinned, "ATUid_1")


# --- a reset code sets one PIN -----------------------------------------------------------------


def _reset_code(world, monkeypatch, code: str, at: datetime) -> None:
    """A reset code sent for the verified learner's details at ``at`` and used at once."""
    monkeypatch.setattr(accounts, "generate_otp", lambda: code)
    with world.db.transaction() as session:
        found = accounts.start_activation(session, KEYS, PHONE, "12345678", date(2014, 9, 5), at, Purpose.PIN_RESET)
        assert found.result is ActivationResult.MATCH
    with world.db.transaction() as session:
        assert accounts.check_otp(session, KEYS, PHONE, Purpose.PIN_RESET, code, at).result is OtpResult.OK


def _reset(world, pin: str, at: datetime) -> bool:
    with world.db.transaction() as session:
        return accounts.reset_pin(session, KEYS, PHONE, pin, at)


def test_a_reset_code_sets_one_pin_and_a_second_reset_needs_a_new_code(pinned, monkeypatch):
    """A used reset code proved the phone for 10 minutes, and every ``reset_pin`` in them set a PIN:
    whoever held the phone (or sent forged hops) after the parent's reset could set another PIN
    without a code. The reset now spends the code: a second one needs a new code."""
    _reset_code(pinned, monkeypatch, "314159", NOW)
    assert _reset(pinned, "5803", NOW)
    for later in (NOW, NOW + timedelta(minutes=1), NOW + timedelta(minutes=9)):
        assert not _reset(pinned, "6914", later)
    assert _pin(pinned, None, NOW + timedelta(minutes=9), pin="5803") is PinResult.OK
    assert _pin(pinned, None, NOW + timedelta(minutes=9), pin="6914") is PinResult.WRONG
    with pinned.db.transaction() as session:
        rows = session.query(AuditEvent).filter_by(action=accounts.RESET_ACTION).all()
        assert [(r.phone, r.learner_id, r.channel) for r in rows] == [(PHONE, None, "ussd")]
    _reset_code(pinned, monkeypatch, "271828", NOW + timedelta(minutes=2))  # a new code: a new reset
    assert _reset(pinned, "6914", NOW + timedelta(minutes=3))
    assert not _reset(pinned, "7025", NOW + timedelta(minutes=4))
    assert _pin(pinned, None, NOW + timedelta(minutes=5), pin="6914") is PinResult.OK


def test_a_reset_spends_its_code_whatever_the_resetting_hosts_clock(pinned, monkeypatch):
    """The spend is a ``pin_reset`` row dated at or after the code's use. A web process whose clock
    was behind the one that checked the code (two hosts, a few seconds apart) dated its reset before
    that use, so the code stayed unspent and set a PIN again for the rest of its 10 minutes. The
    row is now dated no earlier than the code's use."""
    _reset_code(pinned, monkeypatch, "314159", NOW + timedelta(seconds=5))  # checked by a host ahead
    assert _reset(pinned, "5803", NOW)  # the reset on a host 5 s behind
    assert not _reset(pinned, "6914", NOW + timedelta(seconds=1))
    assert _pin(pinned, None, NOW + timedelta(minutes=1), pin="5803") is PinResult.OK


def test_a_reset_spends_only_its_own_phones_code(pinned, monkeypatch):
    pinned.learner(first="Brian", phones=(STRANGER,), verified=True, upi="B7K9M2", birth_cert="777")
    pinned.activate(phone=STRANGER, pin="5937")
    _reset_code(pinned, monkeypatch, "314159", NOW)
    with pinned.db.transaction() as session:
        session.add(AuditEvent(at=NOW, phone=STRANGER, learner_id=None, action=accounts.RESET_ACTION,
                               channel="ussd"))
    assert _reset(pinned, "5803", NOW + timedelta(minutes=1))


def test_a_code_still_good_is_named_to_a_new_session_for_the_same_learner_only(pinned, monkeypatch):
    """A UPI code refused within the minute of the last one is ``STILL_GOOD`` when the phone's code
    outstanding is for this very learner, not used, not expired, with tries left: a new session is
    then given its screen, and no second code goes. Only after the PIN in that session; another
    learner waits; a wrong code's tries still count; past a ceiling it is 'too many codes'."""
    other = pinned.learner(first="Brian", verified=True, upi="B7K9M2", birth_cert="777")
    monkeypatch.setattr(accounts, "generate_otp", lambda: "314159")
    at = [NOW]
    services = RegistryServices(pinned.db, KEYS, clock=lambda: at[0])

    def send(session_id: str, learner_id: int = pinned.learner_id) -> SendResult:
        return services.send_otp(PHONE, Purpose.UPI, learner_id, session_id)

    def check(code: str, session_id: str = "ATUid_2") -> OtpResult:
        return services.check_otp(PHONE, Purpose.UPI, code, pinned.learner_id, session_id).result

    def codes() -> int:
        with pinned.db.transaction() as session:
            return session.query(OneTimeCode).count()

    assert _pin(pinned, "ATUid_1") is PinResult.OK and send("ATUid_1") is SendResult.SENT
    at[0] = NOW + timedelta(seconds=30)
    with pytest.raises(PinNeeded):
        send("ATUid_2")  # a new session: its own PIN first, code or no code
    assert _pin(pinned, "ATUid_2", at=at[0]) is PinResult.OK
    assert send("ATUid_2") is SendResult.STILL_GOOD
    assert send("ATUid_2", other) is SendResult.TOO_SOON  # the code is the first learner's
    assert [check("000000"), check("000001")] == [OtpResult.WRONG, OtpResult.WRONG]
    assert send("ATUid_2") is SendResult.STILL_GOOD  # one try left on it
    assert check("000002") is OtpResult.EXHAUSTED
    assert send("ATUid_2") is SendResult.TOO_SOON and codes() == 1  # no tries left: not offered
    # a used code is not offered
    at[0] = NOW + timedelta(minutes=2)
    assert _pin(pinned, "ATUid_3", at=at[0]) is PinResult.OK and send("ATUid_3") is SendResult.SENT
    assert check("314159", "ATUid_3") is OtpResult.OK
    assert send("ATUid_3") is SendResult.TOO_SOON and codes() == 2
    # an expired one neither: another purpose's code holds the minute after it
    at[0] = NOW + timedelta(minutes=4)
    assert send("ATUid_3") is SendResult.SENT
    at[0] = NOW + timedelta(minutes=9, seconds=1)
    with pinned.db.transaction() as session:
        assert accounts.issue_otp(session, KEYS, PHONE, Purpose.PIN_RESET, at[0], pinned.learner_id) is SendResult.SENT
    assert _pin(pinned, "ATUid_4", at=at[0]) is PinResult.OK and send("ATUid_4") is SendResult.TOO_SOON
    # past the hour's ceiling (5 codes), a minute after the last: 'too many codes', not 'the code sent
    # less than a minute ago is still good'
    at[0] = NOW + timedelta(minutes=10, seconds=2)
    assert send("ATUid_4") is SendResult.SENT and codes() == 5
    at[0] = NOW + timedelta(minutes=11, seconds=3)
    assert send("ATUid_4") is SendResult.LIMIT and codes() == 5


@pytest.mark.parametrize("purpose", [Purpose.ACTIVATE, Purpose.PIN_RESET])
def test_details_again_within_the_minute_name_the_code_still_good(world, purpose):
    """Activation or a PIN reset refused within the minute is ``STILL_GOOD``, with
    the learner, when the details are those of the learner whose code is outstanding and that code is
    not used, not expired and has tries left: a new session is given its screen, no second code.
    Other details are told to wait as before: another learner's are no miss, details matching none
    are one, as at any other time (else 'still good' tested details at no cost)."""
    jane = world.learner()
    world.learner(first="Brian", upi="B7K9M2", birth_cert="777", assessment=None)
    if purpose is Purpose.PIN_RESET:
        world.activate()

    def attempt(identifier: str, at: datetime, born: date = date(2014, 9, 5)):
        with world.db.transaction() as session:
            return accounts.start_activation(session, KEYS, PHONE, identifier, born, at, purpose)

    def check(code: str, at: datetime) -> OtpResult:
        with world.db.transaction() as session:
            return accounts.check_otp(session, KEYS, PHONE, purpose, code, at, jane).result

    def misses() -> int:
        with world.db.transaction() as session:
            return session.query(AuditEvent).filter_by(action=accounts.MISS_ACTION).count()

    assert attempt("12345678", NOW).result is ActivationResult.MATCH
    soon = NOW + timedelta(seconds=10)
    again = attempt("12345678", soon)
    assert again.result is ActivationResult.STILL_GOOD and again.learner_id == jane
    assert attempt("K2023000456", soon).result is ActivationResult.STILL_GOOD  # her other number
    assert attempt("777", soon) == attempt("12345678", soon, date(2014, 9, 6)) == attempt("999", soon)
    assert attempt("777", soon).result is ActivationResult.TOO_SOON and misses() == 2  # the two of none
    assert [check("000000", soon), check("000001", soon)] == [OtpResult.WRONG] * 2
    assert attempt("12345678", soon).result is ActivationResult.STILL_GOOD  # one try left
    assert check("000002", soon) is OtpResult.EXHAUSTED
    assert attempt("12345678", soon).result is ActivationResult.TOO_SOON  # spent: not offered
    # a used code neither
    later = NOW + timedelta(minutes=2)
    with world.db.transaction() as session:
        session.query(OneTimeCode).delete()
    assert attempt("12345678", later).result is ActivationResult.MATCH
    with world.db.transaction() as session:
        code = session.query(OneTimeCode).one()
        code.used_at = later
    assert attempt("12345678", later + timedelta(seconds=5)).result is ActivationResult.TOO_SOON
    with world.db.transaction() as session:
        assert session.query(OneTimeCode).count() == 1
