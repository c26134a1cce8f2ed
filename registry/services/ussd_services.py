"""The registry's implementation of the menus' ``Services`` protocol: one transaction per call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from menus.services import (
    Account,
    Activation,
    LearnerChoice,
    LearnerStatus,
    OtpCheck,
    PinCheck,
    PinChoicesSpent,
    Purpose,
    SendResult,
)

from ..db import Database
from . import accounts
from .accounts import Keys

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class RegistryServices:
    """``menus.services.Services`` over the registry database. ``clock`` is injectable for tests."""

    def __init__(self, db: Database, keys: Keys, clock: Clock = utc_now) -> None:
        self.db = db
        self.keys = keys
        self.clock = clock

    # Reads of one statement use ``Database.autocommit`` (no transaction round trips); the rest one transaction.
    def language(self, phone: str) -> str | None:
        with self.db.autocommit() as connection:
            return accounts.language(connection, phone)

    def caller(self, phone: str) -> accounts.Caller:
        """``language`` and ``account`` together, in one statement."""
        return accounts.read_caller(self.db, phone)

    def set_language(self, phone: str, language: str) -> None:
        with self.db.transaction() as session:
            accounts.set_language(session, phone, language)

    def account(self, phone: str) -> Account:
        return accounts.read_caller(self.db, phone).account(self.clock())

    def start_activation(self, phone: str, identifier: str, born: date, session_id: str | None = None) -> Activation:
        """To an active account (adding a learner) only after the PIN in ``session_id``: else ``PinNeeded``."""
        with self.db.transaction() as session:
            return accounts.start_activation(session, self.keys, phone, identifier, born, self.clock(),
                                             session_id=session_id)

    def start_pin_reset(self, phone: str, identifier: str, born: date) -> Activation:
        with self.db.transaction() as session:
            return accounts.start_activation(session, self.keys, phone, identifier, born, self.clock(),
                                             Purpose.PIN_RESET)

    def send_otp(self, phone: str, purpose: Purpose, learner_id: int | None = None,
                 session_id: str | None = None) -> SendResult:
        """A UPI code (it leads to the UPI by SMS) only after the PIN in ``session_id``: else ``PinNeeded``."""
        now = self.clock()
        with self.db.transaction() as session:
            if purpose is Purpose.UPI:
                accounts.require_pin(session, phone, session_id, now)
            return accounts.issue_otp(session, self.keys, phone, purpose, now, learner_id)

    def check_otp(self, phone: str, purpose: Purpose, code: str, learner_id: int | None = None,
                  session_id: str | None = None) -> OtpCheck:
        """A code that leads to learner data (``accounts.require_pin_for_code``) only after the PIN in
        ``session_id``: else ``PinNeeded``, and the code is left as it was (still good, no try counted)."""
        now = self.clock()
        with self.db.transaction() as session:
            accounts.require_pin_for_code(session, phone, purpose, session_id, now)
            return accounts.check_otp(session, self.keys, phone, purpose, code, now, learner_id)

    def check_pin(self, phone: str, pin: str, session_id: str) -> PinCheck:
        with self.db.transaction() as session:
            return accounts.check_pin(session, self.keys, phone, pin, self.clock(), session_id)

    def pin_refused(self, phone: str, pin: str) -> bool:
        """Counted (``accounts.judge_chosen_pin``); past the day's PINs ``PinChoicesSpent``, raised
        after the commit so the refusal's audit row stays."""
        with self.db.transaction() as session:
            refused = accounts.judge_chosen_pin(session, phone, pin, self.clock())
        if refused is None:
            raise PinChoicesSpent
        return refused

    def seal_pin(self, pin: str) -> str:
        return self.keys.pin.seal(pin)

    def sealed_pin_matches(self, sealed: str, pin: str) -> bool:
        return self.keys.pin.seal_matches(sealed, pin)

    def activate(self, phone: str, learner_id: int, pin: str | None, session_id: str) -> bool:
        """To an active account (adding a learner) only after the PIN in ``session_id``: else ``PinNeeded``."""
        with self.db.transaction() as session:
            return accounts.activate(session, self.keys, phone, learner_id, pin, session_id, self.clock())

    def set_pin(self, phone: str, pin: str, session_id: str) -> bool:
        """Only for the session that entered the current PIN: else ``PinNeeded`` (nothing changed)."""
        with self.db.transaction() as session:
            return accounts.set_pin(session, self.keys, phone, pin, session_id, self.clock())

    def reset_pin(self, phone: str, pin: str) -> bool:
        with self.db.transaction() as session:
            return accounts.reset_pin(session, self.keys, phone, pin, self.clock())

    def my_learners(self, phone: str, session_id: str) -> list[LearnerChoice]:
        with self.db.transaction() as session:
            return accounts.my_learners(session, phone, session_id, self.clock())

    def send_upi(self, phone: str, learner_id: int, session_id: str) -> bool:
        """Only after the PIN in ``session_id``: else ``PinNeeded`` (nothing sent)."""
        with self.db.transaction() as session:
            return accounts.send_upi(session, phone, learner_id, session_id, self.clock())

    def learner_status(self, phone: str, learner_id: int, session_id: str) -> LearnerStatus | None:
        with self.db.transaction() as session:
            return accounts.learner_status(session, phone, learner_id, session_id, self.clock())
