"""My account: change PIN, language, forgotten PIN reset (a learner's details, then a one-time code)."""

from __future__ import annotations

from datetime import date

from ..engine import Context, Go, Home, Outcome, Retry, Screen, Stop, View
from ..services import Activation, PinNeeded, Purpose
from ..texts import LANGUAGE_NAMES, LANGUAGES
from .activate import BirthDate, Identifier
from .common import ChoosePin, ConfirmPin, OtpEntry


class AccountMenu(Screen):
    name = "acct"

    def render(self, ctx: Context) -> View:
        return View(
            lines=(ctx.t("acct.title"),),
            options=(("1", ctx.t("acct.change_pin")), ("2", ctx.t("acct.language")), ("3", ctx.t("acct.forgot_pin"))),
        )

    def handle(self, ctx: Context, value: str) -> Outcome:
        if value == "1":
            ctx.data["after"] = "chg.pin"
            return Go("pin")
        if value == "2":
            return Go("lang")
        if value == "3":
            return _start_reset(ctx)
        return Retry(ctx.t("hint.choice"))


def _start_reset(ctx: Context) -> Outcome:
    """A forgotten PIN (even while it is locked): an active account proves it knows one of its
    verified learners, as at activation, then gets a code by SMS. The code alone would let anyone
    holding the phone past the PIN."""
    if not ctx.services.account(ctx.phone).active:
        return Stop(ctx.t("need_active"))
    # a learner being added before (Activate account, then ``0`` on its PIN screen) is no longer:
    # its flag would send the shared identifier screen to the PIN this parent has forgotten
    ctx.data.pop("adding", None)
    return Go("rst.id", note=ctx.t("rst.intro"))


def _match_for_reset(ctx: Context, identifier: str, born: date) -> Activation:
    return ctx.services.start_pin_reset(ctx.phone, identifier, born)


class Language(Screen):
    name = "lang"

    def render(self, ctx: Context) -> View:
        options = tuple((str(i + 1), LANGUAGE_NAMES[code]) for i, code in enumerate(LANGUAGES))
        return View(lines=(ctx.t("lang.title"),), options=options)

    def handle(self, ctx: Context, value: str) -> Outcome:
        if value not in {str(i + 1) for i in range(len(LANGUAGES))}:
            return Retry(ctx.t("hint.choice"))
        ctx.lang = LANGUAGES[int(value) - 1]
        ctx.services.set_language(ctx.phone, ctx.lang)
        return Home()


def _change(ctx: Context, pin: str) -> Outcome:
    """The registry checks that this session entered the current PIN (``pin_ok`` is only the menus' word)."""
    try:
        changed = ctx.services.set_pin(ctx.phone, pin, ctx.session_id)
    except PinNeeded:
        return Stop(ctx.t("pin.again"))
    return Stop(ctx.t("pin.changed" if changed else "need_active"))


def _reset(ctx: Context, pin: str) -> Outcome:
    """The registry checks the reset code's use itself: a session resumed long after it gets no new PIN."""
    if not ctx.services.reset_pin(ctx.phone, pin):
        return Stop(ctx.t("otp.expired"))
    return Stop(ctx.t("pin.reset_done"))


SCREENS = (
    AccountMenu(),
    Language(),
    ChoosePin("chg.pin", "pin.choose_new", "chg.pin2", needs="pin_ok", resumable=False),
    ConfirmPin("chg.pin2", _change, resumable=False),
    Identifier("rst.id", "rst.dob"),
    BirthDate("rst.dob", _match_for_reset, "rst.otp"),
    OtpEntry("rst.otp", Purpose.PIN_RESET, lambda ctx: Go("rst.pin", push=False)),
    ChoosePin("rst.pin", "pin.choose_new", "rst.pin2", needs="otp_ok", resumable=True),
    ConfirmPin("rst.pin2", _reset, resumable=True),
)
