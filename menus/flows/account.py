"""My account: change PIN, language, forgotten PIN reset through a one-time code."""

from __future__ import annotations

from ..engine import Context, Go, Home, Outcome, Retry, Screen, Stop, View
from ..services import Purpose, SendResult
from ..texts import LANGUAGE_NAMES, LANGUAGES
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
    """A forgotten PIN: an active account gets a code by SMS (even while its PIN is locked)."""
    if not ctx.services.account(ctx.phone).active:
        return Stop(ctx.t("need_active"))
    sent = ctx.services.send_otp(ctx.phone, Purpose.PIN_RESET)
    if sent is SendResult.TOO_SOON:
        return Stop(ctx.t("otp.wait"))
    if sent is SendResult.LIMIT:
        return Stop(ctx.t("otp.limit"))
    return Go("rst.otp")


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
    ctx.services.set_pin(ctx.phone, pin)
    return Stop(ctx.t("pin.changed"))


def _reset(ctx: Context, pin: str) -> Outcome:
    ctx.services.set_pin(ctx.phone, pin)
    return Stop(ctx.t("pin.reset_done"))


SCREENS = (
    AccountMenu(),
    Language(),
    ChoosePin("chg.pin", "pin.choose_new", "chg.pin2", needs="pin_ok", resumable=False),
    ConfirmPin("chg.pin2", _change, resumable=False),
    OtpEntry("rst.otp", Purpose.PIN_RESET, lambda ctx: Go("rst.pin", push=False)),
    ChoosePin("rst.pin", "pin.choose_new", "rst.pin2", needs="otp_ok", resumable=True),
    ConfirmPin("rst.pin2", _reset, resumable=True),
)
