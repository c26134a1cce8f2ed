"""A scripted ``Services`` fake: every registry answer is chosen by the input, so one menu walk can
reach every branch. Names and schools are worst-case long. Fixtures are in ``conftest.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from menus.engine import Context, Engine, Reply, State
from menus.services import (
    Account,
    Activation,
    ActivationResult,
    Enrolment,
    LearnerChoice,
    LearnerStatus,
    OtpCheck,
    OtpResult,
    PinCheck,
    PinChoicesSpent,
    PinNeeded,
    PinResult,
    Purpose,
    SendResult,
)

LONG_SCHOOL = "St. Bakhita Kiambu Mixed Day and Boarding Comprehensive Secondary School of the Holy Ghost Fathers"
OTHER_SCHOOL = "Our Lady of Perpetual Help Nyandarua Girls' Junior Secondary Academy and Boarding Primary School"
# Codes and PINs that make the fake answer each way.
OTP_OK, OTP_WRONG, OTP_EXPIRED, OTP_EXHAUSTED = "111111", "222222", "333333", "444444"
PIN_OK, PIN_WRONG, PIN_LOCK_NOW, PIN_LOCKED, PIN_EASY = "1357", "2468", "3579", "4680", "1234"
PIN_SPENT = "9753"  # a PIN chosen past the phone's PINs of the day
ID_MATCH, ID_SOON, ID_LIMIT, ID_GONE, ID_BLOCKED = "BC1", "SOON", "LIMIT", "GONE", "BLOCKED"
ID_PINS_SPENT = "PINS"  # details given by a phone whose PINs chosen today are used up
DOB = "05012015"


def long_learners(count: int) -> list[LearnerChoice]:
    names = ["Wanjikumuthonimainawairimu Nyawira-Kamau", "Jane Wanjiku", "Achiengatieno Odhiambo",
             "Muthonimaryanne Kariuki", "Kiplagatkipchumba Rotich", "Nafulanekesa Wafula", "Zawadiamani Said"]
    return [
        LearnerChoice(i + 1, f"{names[i % len(names)].split()[0]} {names[i % len(names)].split()[-1][0]}.",
                      ["Grade 12", "Form 4", "PP1", "Grade 6"][i % 4])
        for i in range(count)
    ]


@dataclass
class FakeServices:
    linked: bool = True
    active: bool = True
    locked_minutes: int = 0
    learner_count: int = 7
    stored_language: str | None = None
    calls: list[tuple] = field(default_factory=list)
    # Sessions a right PIN was entered in, as the registry records them; None (the walks, which
    # build a fake per hop): every session is taken to have entered it.
    pin_sessions: set[str] | None = None

    def _require_pin(self, session_id: str | None) -> None:
        """As the registry: learner data only to the session the PIN was entered in."""
        if self.pin_sessions is not None and session_id not in self.pin_sessions:
            raise PinNeeded

    def language(self, phone: str) -> str | None:
        return self.stored_language

    def set_language(self, phone: str, language: str) -> None:
        self.calls.append(("set_language", language))
        self.stored_language = language

    def account(self, phone: str) -> Account:
        return Account(self.linked, self.active, self.locked_minutes)

    def start_activation(self, phone: str, identifier: str, born: date, session_id: str | None = None) -> Activation:
        if self.active:
            self._require_pin(session_id)  # as the registry: adding a learner needs this session's PIN
        self.calls.append(("start_activation", identifier, born))
        return self._match(identifier, born)

    @staticmethod
    def _match(identifier: str, born: date) -> Activation:
        """The answer to these details, chosen by the identifier."""
        if identifier == ID_SOON:
            return Activation(ActivationResult.TOO_SOON)
        if identifier == ID_LIMIT:
            return Activation(ActivationResult.LIMIT)
        if identifier == ID_BLOCKED:
            return Activation(ActivationResult.MISS_LIMIT)
        if identifier == ID_PINS_SPENT:
            return Activation(ActivationResult.PIN_LIMIT)
        if identifier in (ID_MATCH, ID_GONE) and born == date(2015, 1, 5):
            return Activation(ActivationResult.MATCH, 1 if identifier == ID_MATCH else 99)
        return Activation(ActivationResult.MISS)

    def start_pin_reset(self, phone: str, identifier: str, born: date) -> Activation:
        self.calls.append(("start_pin_reset", identifier, born))
        return self._match(identifier, born)

    def send_otp(self, phone: str, purpose: Purpose, learner_id: int | None = None,
                 session_id: str | None = None) -> SendResult:
        if purpose is Purpose.UPI:
            self._require_pin(session_id)
        self.calls.append(("send_otp", purpose, learner_id))
        answers = {3: SendResult.TOO_SOON, 4: SendResult.LIMIT, 5: SendResult.STILL_GOOD}
        return answers.get(learner_id or 0, SendResult.SENT)

    def check_otp(self, phone: str, purpose: Purpose, code: str, learner_id: int | None = None,
                  session_id: str | None = None) -> OtpCheck:
        if purpose is Purpose.UPI or (purpose is Purpose.ACTIVATE and self.active):
            self._require_pin(session_id)  # as the registry: the code left as it was
        self.calls.append(("check_otp", purpose, code))
        return {
            OTP_OK: OtpCheck(OtpResult.OK),
            OTP_WRONG: OtpCheck(OtpResult.WRONG, 2),
            OTP_EXHAUSTED: OtpCheck(OtpResult.EXHAUSTED),
        }.get(code, OtpCheck(OtpResult.EXPIRED))

    def check_pin(self, phone: str, pin: str, session_id: str) -> PinCheck:
        if pin == PIN_OK and self.pin_sessions is not None:
            self.pin_sessions.add(session_id)
        return {
            PIN_OK: PinCheck(PinResult.OK),
            PIN_WRONG: PinCheck(PinResult.WRONG, tries_left=2),
            PIN_LOCK_NOW: PinCheck(PinResult.LOCKED_NOW, locked_minutes=30),
            PIN_LOCKED: PinCheck(PinResult.LOCKED, locked_minutes=29),
        }.get(pin, PinCheck(PinResult.WRONG, tries_left=1))

    def pin_refused(self, phone: str, pin: str) -> bool:
        if pin == PIN_SPENT:
            raise PinChoicesSpent
        return pin == PIN_EASY

    def seal_pin(self, pin: str) -> str:
        return f"sealed:{pin}"

    def sealed_pin_matches(self, sealed: str, pin: str) -> bool:
        return sealed == f"sealed:{pin}"

    def activate(self, phone: str, learner_id: int, pin: str | None, session_id: str) -> bool:
        if self.active:
            self._require_pin(session_id)
        self.calls.append(("activate", learner_id, pin is not None))
        return learner_id != 99

    def set_pin(self, phone: str, pin: str, session_id: str) -> bool:
        self._require_pin(session_id)
        self.calls.append(("set_pin",))
        return True

    def reset_pin(self, phone: str, pin: str) -> bool:
        self.calls.append(("reset_pin",))
        return True

    def my_learners(self, phone: str, session_id: str) -> list[LearnerChoice]:
        self._require_pin(session_id)
        return long_learners(self.learner_count)

    def send_upi(self, phone: str, learner_id: int, session_id: str) -> bool:
        self._require_pin(session_id)
        self.calls.append(("send_upi", learner_id))
        return learner_id != 6

    def learner_status(self, phone: str, learner_id: int, session_id: str) -> LearnerStatus | None:
        self._require_pin(session_id)
        if learner_id == 6:
            return None
        choice = long_learners(7)[(learner_id - 1) % 7]
        # 1 requested, 2 released to a school, 3 admitted, 4 enrolled, 5 requested, 7 released to none
        enrolment = Enrolment.RELEASED if learner_id == 7 else list(Enrolment)[learner_id % 4]
        return LearnerStatus(
            masked_name=choice.masked_name, grade=choice.grade, school=LONG_SCHOOL, enrolment=enrolment,
            other_school=None if learner_id == 7 else OTHER_SCHOOL, admitted_on=date(2026, 1, 12),
            released_results=["KJSEA 2025", "KCSE 2025", "KPSEA 2022", "KCPE 2021", "KNEC 2020"],
        )


@dataclass
class Conversation:
    """Drives an engine hop by hop, as the gateway does, keeping the state between hops."""

    engine: Engine
    services: FakeServices
    phone: str = "+254712345678"
    state: State | None = None
    last: Reply | None = None
    session_id: str = "test-session"

    def ctx(self) -> Context:
        return Context(phone=self.phone, session_id=self.session_id, services=self.services, ussd_code="*384*1234#")

    def dial(self, saved: State | None = None) -> Reply:
        self.last, self.state = self.engine.start(self.ctx(), saved)
        return self.last

    def send(self, value: str) -> Reply:
        assert self.state is not None and not (self.last and self.last.end), "session already ended"
        self.last, self.state = self.engine.step(self.ctx(), self.state, value)
        return self.last
