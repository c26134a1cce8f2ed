"""What the menus ask of the registry: a ``Services`` protocol and the plain values it returns.

The registry implements it (``registry.services.ussd_services``); tests implement fakes. Every
method takes the caller's E.164 phone and decides itself what that phone may see, so the menus
never hold more than they show.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol


class Purpose(enum.StrEnum):
    """What a one-time code unlocks."""

    ACTIVATE = "activate"
    UPI = "upi"
    PIN_RESET = "pin_reset"


@dataclass(frozen=True)
class Account:
    """The caller's standing: linked to any learner, activated (has a PIN), PIN lock minutes left."""

    linked: bool
    active: bool
    locked_minutes: int = 0


class PinResult(enum.StrEnum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED_NOW = "locked_now"  # this try used the last chance
    LOCKED = "locked"  # already locked before this try
    INACTIVE = "inactive"


@dataclass(frozen=True)
class PinCheck:
    result: PinResult
    tries_left: int = 0
    locked_minutes: int = 0


class SendResult(enum.StrEnum):
    SENT = "sent"
    TOO_SOON = "too_soon"  # less than a minute since the last code
    LIMIT = "limit"  # hourly or daily ceiling reached
    # No new code (too soon), but the one outstanding for this phone, sent within the minute, is for
    # this same purpose and learner and still good (not used, tries left): enter that one. A new
    # session (a dropped one dialled again) learns it here, as its menus know of no code sent.
    STILL_GOOD = "still_good"


class ActivationResult(enum.StrEnum):
    MATCH = "match"  # the code is sent
    MISS = "miss"  # identity or date wrong, or not this phone's learner: one answer for all
    NOT_LINKED = "not_linked"
    TOO_SOON = "too_soon"
    LIMIT = "limit"
    MISS_LIMIT = "miss_limit"  # too many misses from this phone today: said before any matching
    # The phone's PINs chosen today are used up (``PinChoicesSpent``) and this code would lead to
    # choosing one (a first activation, a reset): said before any matching, no code sent
    PIN_LIMIT = "pin_limit"
    # No new code (too soon), but these details are the learner's whose code, sent within the
    # minute, is still good for this phone and purpose: enter that one (``SendResult.STILL_GOOD``)
    STILL_GOOD = "still_good"


@dataclass(frozen=True)
class Activation:
    result: ActivationResult
    learner_id: int | None = None


class OtpResult(enum.StrEnum):
    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"  # none outstanding, used, or older than 5 minutes
    EXHAUSTED = "exhausted"  # third wrong try


@dataclass(frozen=True)
class OtpCheck:
    result: OtpResult
    tries_left: int = 0


@dataclass(frozen=True)
class LearnerChoice:
    """One line of a learner list: an opaque id and the masked name (``Jane W.``)."""

    learner_id: int
    masked_name: str
    grade: str


class Enrolment(enum.StrEnum):
    ENROLLED = "enrolled"
    REQUESTED = "requested"  # another school asked for a transfer
    RELEASED = "released"  # released by the school it is at, awaiting admission
    ADMITTED = "admitted"  # admitted after a transfer


@dataclass(frozen=True)
class LearnerStatus:
    masked_name: str
    grade: str
    school: str
    enrolment: Enrolment
    other_school: str | None = None  # the school that asked for the learner (requested, or released to it)
    admitted_on: date | None = None
    released_results: list[str] = field(default_factory=list)  # e.g. ["KCSE 2025"], newest first


class PinNeeded(Exception):
    """Raised by a service that discloses learner data when the registry holds no right PIN entered
    by this phone in this USSD session (within ``registry.services.accounts.PIN_SESSION_VALID``):
    nothing is disclosed (or, from ``set_pin`` and ``activate``, changed; from ``check_otp``, the
    code is left as it was), and the menus ask for the PIN again."""


class PinChoicesSpent(Exception):
    """Raised by ``pin_refused`` when this phone has had its PINs of the day judged
    (``registry.services.accounts.PIN_CHOICES_PER_DAY`` in 24 h, across sessions and dials): this
    one is not judged (a refusal would tell whether it is a learner's birthday), the registry has
    audited it, and the menus end the session."""


class Services(Protocol):
    """The registry operations the menus call. Implementations do their own transactions."""

    def language(self, phone: str) -> str | None:
        """The language stored for this phone, or None."""
        ...

    def set_language(self, phone: str, language: str) -> None: ...

    def account(self, phone: str) -> Account: ...

    def start_activation(self, phone: str, identifier: str, born: date, session_id: str | None = None) -> Activation:
        """Match a learner linked to ``phone`` by identifier and birth date; on a match send an OTP.
        To an active account (adding a learner) ``PinNeeded`` without the PIN in ``session_id``,
        before anything is matched or counted."""
        ...

    def start_pin_reset(self, phone: str, identifier: str, born: date) -> Activation:
        """As ``start_activation``, among the learners ``phone`` is verified for; a match gets a reset code."""
        ...

    def send_otp(self, phone: str, purpose: Purpose, learner_id: int | None = None,
                 session_id: str | None = None) -> SendResult:
        """Send a code by SMS; a ``Purpose.UPI`` code only after the PIN in ``session_id`` (else ``PinNeeded``).
        ``STILL_GOOD``: none sent, the code sent for this learner (in any session) is still good."""
        ...

    def check_otp(self, phone: str, purpose: Purpose, code: str, learner_id: int | None = None,
                  session_id: str | None = None) -> OtpCheck:
        """Check (and on success use up) the code; one leading to learner data (a UPI code, or an
        activation code of an active account: adding a learner) only after the PIN in ``session_id``:
        else ``PinNeeded``, and the code is left as it was."""
        ...

    def check_pin(self, phone: str, pin: str, session_id: str) -> PinCheck:
        """Check the account PIN; a right one is recorded for ``session_id`` (what disclosures ask for)."""
        ...

    def pin_refused(self, phone: str, pin: str) -> bool:
        """Whether the PIN policy refuses this PIN (trivial, a year, or a learner's birthday); each
        call counts towards the phone's PINs judged a day: past them ``PinChoicesSpent``."""
        ...

    def seal_pin(self, pin: str) -> str:
        """A keyed one-way token of a PIN, to hold in session state between choose and confirm."""
        ...

    def sealed_pin_matches(self, sealed: str, pin: str) -> bool: ...

    def activate(self, phone: str, learner_id: int, pin: str | None, session_id: str) -> bool:
        """Finish activation after a good OTP: verify the link, set the PIN (None keeps it), SMS the UPI;
        to an active account (adding a learner) ``PinNeeded`` without the PIN in ``session_id``."""
        ...

    def set_pin(self, phone: str, pin: str, session_id: str) -> bool:
        """Replace the PIN of an active account and clear its lock, only for the session that entered
        the current PIN (``session_id``): else ``PinNeeded``, and nothing changes. False: not active."""
        ...

    def reset_pin(self, phone: str, pin: str) -> bool:
        """``set_pin`` after a forgotten-PIN code this phone used within the last minutes (checked by
        the registry, not taken from the session); False when there is none."""
        ...

    def my_learners(self, phone: str, session_id: str) -> list[LearnerChoice]:
        """Learners this phone has verified (through activation); ``PinNeeded`` without the PIN in ``session_id``."""
        ...

    def send_upi(self, phone: str, learner_id: int, session_id: str) -> bool:
        """Queue the learner's UPI by SMS to this phone and audit it; False when not allowed;
        ``PinNeeded`` without the PIN in ``session_id``."""
        ...

    def learner_status(self, phone: str, learner_id: int, session_id: str) -> LearnerStatus | None:
        """The learner's status for this phone (audited), or None when not allowed; ``PinNeeded``
        without the PIN in ``session_id``."""
        ...
