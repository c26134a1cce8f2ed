"""Activation: identify a learner linked to this phone, prove it with a code, choose a PIN.

The same two screens (identifier, date of birth) open a forgotten-PIN reset (``menus.flows.account``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from ..engine import Back, Context, Go, Outcome, Retry, Screen, Stop, View
from ..services import Activation, ActivationResult, PinNeeded, Purpose
from .common import ChoosePin, ConfirmPin, OtpEntry, birth_date_hint, clean_identifier, parse_ddmmyyyy

MAX_MISSES = 3
MISSES = "_misses"  # survives ``00`` (home): three misses per session, not per attempt


def begin(ctx: Context) -> Outcome:
    """From the main menu: an unlinked phone learns only to ask its school; an active one adds a learner."""
    account = ctx.services.account(ctx.phone)
    if not account.linked:
        return Stop(ctx.t("act.not_linked"))
    if account.active:
        ctx.data.update(adding=True, after="act.id")
        return Go("pin")
    return Go("act.id")


class Identifier(Screen):
    """Asks for a birth certificate, assessment or index number, then goes to ``born``."""

    resumable = True
    fixed = True

    def __init__(self, name: str = "act.id", born: str = "act.dob") -> None:
        self.name = name
        self.born = born

    def enter(self, ctx: Context) -> Outcome | None:
        if ctx.data.get("adding") and not ctx.data.get("pin_ok"):
            return Go("pin", push=False)
        return None

    def render(self, ctx: Context) -> View:
        return View(lines=(ctx.t("act.identifier"),))

    def handle(self, ctx: Context, value: str) -> Outcome:
        identifier = clean_identifier(value)
        if identifier is None:
            return Retry(ctx.t("hint.identifier"))
        ctx.data["identifier"] = identifier
        return Go(self.born)


Start = Callable[[Context, str, date], Activation]


def _start_activation(ctx: Context, identifier: str, born: date) -> Activation:
    return ctx.services.start_activation(ctx.phone, identifier, born, ctx.session_id)


class BirthDate(Screen):
    """Asks for the date of birth, then has ``start`` match the learner; a match goes to ``code``."""

    resumable = True
    fixed = True

    def __init__(self, name: str = "act.dob", start: Start = _start_activation, code: str = "act.otp") -> None:
        self.name = name
        self.start = start
        self.code = code

    def enter(self, ctx: Context) -> Outcome | None:
        return None if ctx.data.get("identifier") else Back()

    def render(self, ctx: Context) -> View:
        return View(lines=(ctx.t("act.dob"),))

    def handle(self, ctx: Context, value: str) -> Outcome:
        born = parse_ddmmyyyy(value)
        hint = birth_date_hint(value, born, ctx.today)
        if hint is not None or born is None:  # a slip, not a miss: the three misses are for wrong details
            return Retry(ctx.t(hint or "hint.date"))
        identifier = ctx.data.pop("identifier", "")
        try:
            outcome = self.start(ctx, identifier, born)
        except PinNeeded:
            # adding a learner in a session resumed in a new dial (its ``pin_ok`` came with the saved
            # state): nothing was matched or sent; the PIN, then the date of birth again
            ctx.data.update(identifier=identifier, pin_ok=False, after=self.name)
            return Go("pin", push=False)
        result = outcome.result
        if result is ActivationResult.MATCH:
            # pushed, the identifier kept: ``0`` on the code screen comes back to this one (CONTRACT:
            # back one screen), where the same date again finds the code still good
            ctx.data.update(learner=outcome.learner_id, identifier=identifier)
            return Go(self.code)
        if result is ActivationResult.MISS:
            misses = ctx.data.get(MISSES, 0) + 1
            ctx.data[MISSES] = misses
            if misses >= MAX_MISSES:
                return Stop(ctx.t("act.too_many_misses"))
            return Back(ctx.t("act.miss"))
        if result is ActivationResult.STILL_GOOD:
            # the same details again within the minute (back from the code screen, or in a new
            # session after a dropped one): the code sent for this learner is still good, says the
            # registry (not once used, from choosing the PIN it led to; tries left)
            ctx.data.update(learner=outcome.learner_id, identifier=identifier)
            return Go(self.code, note=ctx.t("otp.sent_recently"))
        if result is ActivationResult.TOO_SOON:
            # another learner's details within the minute: the code outstanding is not for it
            return Stop(ctx.t("otp.wait"))
        if result is ActivationResult.LIMIT:
            return Stop(ctx.t("otp.limit"))
        if result is ActivationResult.MISS_LIMIT:
            return Stop(ctx.t("act.miss_limit"))
        if result is ActivationResult.PIN_LIMIT:  # the PIN after the code could not be chosen today
            return Stop(ctx.t("pin.day_limit"))
        return Stop(ctx.t("act.not_linked"))


def _after_code(ctx: Context) -> Outcome:
    """Adding a learner (the PIN was asked before the code: the account is active) ends here; a
    first activation goes on to choosing the PIN."""
    if ctx.data.get("adding") or ctx.data.get("pin_ok"):
        done = ctx.services.activate(ctx.phone, int(ctx.data["learner"]), None, ctx.session_id)
        return Stop(ctx.t("act.added" if done else "learners.gone"))
    return Go("act.pin", push=False)


def _finish(ctx: Context, pin: str) -> Outcome:
    """A first activation; should the account have been activated by another session meanwhile,
    the registry adds the learner only after the PIN in this one (asked to dial again)."""
    try:
        done = ctx.services.activate(ctx.phone, int(ctx.data["learner"]), pin, ctx.session_id)
    except PinNeeded:
        return Stop(ctx.t("pin.again"))
    return Stop(ctx.t("act.done" if done else "learners.gone"))


SCREENS = (
    Identifier(),
    BirthDate(),
    OtpEntry("act.otp", Purpose.ACTIVATE, _after_code),
    ChoosePin("act.pin", "pin.choose", "act.pin2", needs="otp_ok", resumable=True),
    ConfirmPin("act.pin2", _finish, resumable=True),
)
