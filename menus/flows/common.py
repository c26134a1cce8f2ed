"""Screens shared by several flows: PIN entry, one-time code entry, choosing a PIN, learner lists."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

from .. import layout
from ..engine import MORE, Back, Context, Go, Home, Outcome, Retry, Screen, Stay, Stop, View
from ..services import LearnerChoice, OtpResult, PinChoicesSpent, PinNeeded, PinResult, Purpose

IDENTIFIER = re.compile(r"^[A-Z0-9/-]{3,24}$")
MAX_CHOSEN = 6  # PINs judged in one session (refused or taken): birthdays are not tried at leisure
# (and the registry judges only so many a day per phone, whatever the dials: ``PinChoicesSpent``)
CHOSEN = "_pins_chosen"  # survives ``00`` (home), as the activation misses do
DATE_SEPARATORS = str.maketrans("", "", " /-.")  # ``05 09 2014``, ``05/09/2014`` read as ``05092014``


def is_digits(value: str, count: int) -> bool:
    return len(value) == count and value.isascii() and value.isdigit()


def parse_ddmmyyyy(value: str) -> date | None:
    """``05092014`` (spaces, ``/``, ``-`` or ``.`` between allowed) -> 2014-09-05; None for anything
    else (wrong length, impossible date)."""
    value = value.translate(DATE_SEPARATORS)
    if not is_digits(value, 8):
        return None
    try:
        return date(int(value[4:]), int(value[2:4]), int(value[:2]))
    except ValueError:
        return None


def birth_date_hint(value: str, born: date | None, today: date) -> str | None:
    """The hint key for a date of birth that cannot be right (``born`` is ``parse_ddmmyyyy(value)``):
    not 8 digits, no such day (31022015), or after ``today``; None for a possible date."""
    if born is None:
        return "hint.no_date" if is_digits(value.translate(DATE_SEPARATORS), 8) else "hint.date"
    return "hint.future_date" if born > today else None


def clean_identifier(value: str) -> str | None:
    """A birth certificate, assessment or index number as typed, upper-cased; None if implausible."""
    value = value.replace(" ", "").upper()
    return value if IDENTIFIER.match(value) else None


class PinEntry(Screen):
    """Asks for the account PIN, then goes to ``data['after']``. Wrong PINs have their own limit."""

    name = "pin"
    fixed = True

    def enter(self, ctx: Context) -> Outcome | None:
        account = ctx.services.account(ctx.phone)
        if not account.active:
            return Stop(ctx.t("need_active"))
        if account.locked_minutes:
            return Stop(ctx.t("pin.locked", minutes=account.locked_minutes))
        return None

    def render(self, ctx: Context) -> View:
        return View(lines=(ctx.t("pin.enter"),))

    def handle(self, ctx: Context, value: str) -> Outcome:
        if not is_digits(value, 4):
            return Retry(ctx.t("hint.digits", n=4))
        check = ctx.services.check_pin(ctx.phone, value, ctx.session_id)
        if check.result is PinResult.OK:
            ctx.data["pin_ok"] = True
            return Go(ctx.data.get("after") or "main", push=False)
        if check.result is PinResult.WRONG:
            return Stay(_tries_left(ctx, check.tries_left, "pin.wrong", "pin.wrong_last"))
        if check.result is PinResult.LOCKED_NOW:
            return Stop(ctx.t("pin.locked_now"))
        if check.result is PinResult.LOCKED:
            return Stop(ctx.t("pin.locked", minutes=check.locked_minutes))
        return Stop(ctx.t("need_active"))


def _tries_left(ctx: Context, left: int, many: str, last: str) -> str:
    """The text for ``left`` tries: ``many`` (``2 tries left``), or ``last`` for the last one."""
    return ctx.t(last) if left == 1 else ctx.t(many, left=left)


class OtpEntry(Screen):
    """Asks for the 6-digit code of ``purpose``; on success calls ``on_ok``.

    A code leading to learner data is checked by the registry only for the session the PIN was
    entered in: when it refuses (``PinNeeded``: a session resumed in a new dial, whose ``pin_ok``
    came with the saved state) the code is left as it was, the caller is asked for the PIN, then
    shown this screen again to enter the same code. Should ``on_ok`` be refused after the code was
    used (the PIN's record ended in between), the caller is asked to dial again."""

    resumable = True
    fixed = True

    def __init__(self, name: str, purpose: Purpose, on_ok: Callable[[Context], Outcome]) -> None:
        self.name = name
        self.purpose = purpose
        self.on_ok = on_ok

    def render(self, ctx: Context) -> View:
        return View(lines=(ctx.t("otp.enter"),))

    def handle(self, ctx: Context, value: str) -> Outcome:
        if not is_digits(value, 6):
            return Retry(ctx.t("hint.digits", n=6))
        try:
            check = ctx.services.check_otp(ctx.phone, self.purpose, value, ctx.data.get("learner"), ctx.session_id)
        except PinNeeded:
            ctx.data.update(pin_ok=False, after=self.name)
            return Go("pin", push=False)
        if check.result is OtpResult.OK:
            ctx.data["otp_ok"] = True
            try:
                return self.on_ok(ctx)
            except PinNeeded:
                return Stop(ctx.t("pin.again"))
        if check.result is OtpResult.WRONG:
            return Stay(_tries_left(ctx, check.tries_left, "otp.wrong", "otp.wrong_last"))
        if check.result is OtpResult.EXHAUSTED:
            return Stop(ctx.t("otp.exhausted"))
        return Stop(ctx.t("otp.expired"))


class ChoosePin(Screen):
    """Asks for a new PIN, refuses easy ones, keeps only a sealed token, then goes to ``confirm``."""

    def __init__(self, name: str, prompt: str, confirm: str, *, needs: str, resumable: bool) -> None:
        self.name = name
        self.prompt = prompt
        self.confirm = confirm
        self.needs = needs  # the data flag that proves the step before (otp_ok or pin_ok)
        self.resumable = resumable

    def enter(self, ctx: Context) -> Outcome | None:
        return None if ctx.data.get(self.needs) else Home()

    def render(self, ctx: Context) -> View:
        return View(lines=(ctx.t(self.prompt),))

    def handle(self, ctx: Context, value: str) -> Outcome:
        if not is_digits(value, 4):
            return Retry(ctx.t("hint.digits", n=4))
        # Every answer judged tells whether it is one of the learners' birthdays (the policy refuses
        # them), a PIN taken as well as one refused: taken, then ``0`` on the confirm screen, it
        # was a free try. So each counts, and once ``MAX_CHOSEN`` were judged the session ends,
        # a refused one at once, the next one unjudged.
        chosen = ctx.data.get(CHOSEN, 0)
        if chosen >= MAX_CHOSEN:
            return Stop(ctx.t("pin.too_many"))
        ctx.data[CHOSEN] = chosen + 1
        try:
            refused = ctx.services.pin_refused(ctx.phone, value)
        except PinChoicesSpent:  # the phone's PINs of the day, across dials: this one not judged
            return Stop(ctx.t("pin.day_limit"))
        if refused:
            # A well-formed answer the policy refuses: said why, not counted as an invalid one (a
            # parent trying 1234, 0000 and a birth year must not lose the code they just verified)
            if chosen + 1 >= MAX_CHOSEN:
                return Stop(ctx.t("pin.too_many"))
            return Stay(ctx.t("pin.trivial"))
        ctx.data["sealed_pin"] = ctx.services.seal_pin(value)
        return Go(self.confirm)


class ConfirmPin(Screen):
    """Asks for the new PIN again; a mismatch goes back to choosing; a match calls ``finish``."""

    def __init__(self, name: str, finish: Callable[[Context, str], Outcome], *, resumable: bool) -> None:
        self.name = name
        self.finish = finish
        self.resumable = resumable

    def enter(self, ctx: Context) -> Outcome | None:
        return None if ctx.data.get("sealed_pin") else Home()

    def render(self, ctx: Context) -> View:
        return View(lines=(ctx.t("pin.confirm"),))

    def handle(self, ctx: Context, value: str) -> Outcome:
        if not is_digits(value, 4):
            return Retry(ctx.t("hint.digits", n=4))
        sealed = ctx.data.pop("sealed_pin", "")
        if not ctx.services.sealed_pin_matches(sealed, value):
            return Back(ctx.t("pin.mismatch"))
        return self.finish(ctx, value)


def learner_label(choice: LearnerChoice) -> str:
    return f"{layout.short_person(choice.masked_name, 18)} ({layout.shorten(choice.grade, 10)})"


class LearnerList(Screen):
    """The learners this phone verified, masked, paged with ``98. More``; one learner is chosen at once.
    Coming back to the list (``0`` after a pick) shows the page the learner was picked from.

    The registry discloses them (and what a pick leads to) only to the session the PIN was entered
    in. When it refuses the list itself (``PinNeeded`` on entry: a session resumed in a new dial
    and taken back to the list) the caller is asked for the PIN, then shown the list; when it
    refuses a pick (the PIN's record ended while the list was shown) the caller is asked to dial
    again."""

    def __init__(self, name: str, on_pick: Callable[[Context, int], Outcome]) -> None:
        self.name = name
        self.on_pick = on_pick

    def enter(self, ctx: Context) -> Outcome | None:
        if not ctx.data.get("pin_ok"):
            return Home()
        try:
            return self._enter(ctx)
        except PinNeeded:
            # ``pin_ok`` came with a resumed state: this session has entered no PIN. Nothing was
            # shown; the PIN screen asks for it (its tries and locks as ever), then comes the list.
            ctx.data.update(pin_ok=False, after=self.name)
            return Go("pin", push=False)

    def _enter(self, ctx: Context) -> Outcome | None:
        choices = ctx.services.my_learners(ctx.phone, ctx.session_id)
        if not choices:
            return Stop(ctx.t("learners.none"))
        ctx.data["choices"] = [[c.learner_id, learner_label(c)] for c in choices]
        # Back on this list (``0`` on the screen a pick led to, or the PIN asked again on the way):
        # the page the learner was picked from; any other way in: the first page
        page = ctx.data.get("page", 0) if ctx.data.get("list") == self.name else 0
        _, pages = self._pages(ctx)
        ctx.data.update(list=self.name, page=min(max(int(page), 0), len(pages) - 1))
        if len(choices) == 1:
            return self.on_pick(ctx, choices[0].learner_id)
        return None

    def _pages(self, ctx: Context) -> tuple[list[str], list[list[int]]]:
        items = [f"{i + 1}. {label}" for i, (_, label) in enumerate(ctx.data.get("choices", []))]
        nav = layout.options_block([("0", ctx.t("nav.back")), ("00", ctx.t("nav.home"))])
        note = max(len(ctx.t("hint.choice")), len(ctx.t("learners.last_page")))  # the longest note above it
        fixed = len(ctx.t("learners.choose")) + 1 + note + 1 + sum(len(n) + 1 for n in nav)
        more = f"{MORE}. {ctx.t('nav.more')}"
        return items, layout.paginate(items, fixed, more)

    def render(self, ctx: Context) -> View:
        items, pages = self._pages(ctx)
        page = min(ctx.data.get("page", 0), len(pages) - 1)
        lines = [ctx.t("learners.choose")] + [items[i] for i in pages[page]]
        if page < len(pages) - 1:
            lines.append(f"{MORE}. {ctx.t('nav.more')}")
        return View(lines=tuple(lines))

    def back(self, ctx: Context) -> Outcome | None:
        """``0`` on a later page shows the page before it; on the first, the previous screen."""
        if ctx.data.get("page", 0) > 0:
            ctx.data["page"] -= 1
            return Stay()
        return None

    def handle(self, ctx: Context, value: str) -> Outcome:
        try:
            return self._handle(ctx, value)
        except PinNeeded:
            return Stop(ctx.t("pin.again"))

    def _handle(self, ctx: Context, value: str) -> Outcome:
        choices = ctx.data.get("choices", [])
        _, pages = self._pages(ctx)
        if value == MORE and ctx.data.get("page", 0) < len(pages) - 1:
            ctx.data["page"] = ctx.data.get("page", 0) + 1
            return Stay()
        if value == MORE:
            # More on the last page (no ``98`` shown, pressed from habit): said so, not counted
            # among the three wrong answers that end the session
            return Stay(ctx.t("learners.last_page"))
        # A number on this page or one before it: a learner not shown yet is never picked (``9`` on
        # a page of 5 to 8 is a slip for ``98``, not a wish for the UPI of a learner never seen)
        page = min(ctx.data.get("page", 0), len(pages) - 1)
        shown = pages[page][-1] + 1 if pages[page] else 0
        if value.isascii() and value.isdigit() and 1 <= int(value) <= min(shown, len(choices)):
            return self.on_pick(ctx, int(choices[int(value) - 1][0]))
        return Retry(ctx.t("hint.choice"))
