"""The main menu and the offer to resume a dropped session."""

from __future__ import annotations

from ..engine import BACK, HOME, Context, Go, Home, Outcome, Restore, Retry, Screen, Stay, View
from . import activate


class MainMenu(Screen):
    name = "main"
    fixed = True

    def render(self, ctx: Context) -> View:
        return View(
            lines=(ctx.t("main.title"),),
            options=(
                ("1", ctx.t("main.activate")),
                ("2", ctx.t("main.upi")),
                ("3", ctx.t("main.status")),
                ("4", ctx.t("main.account")),
            ),
        )

    def handle(self, ctx: Context, value: str) -> Outcome:
        if value == "1":
            return activate.begin(ctx)
        if value == "2":
            ctx.data["after"] = "upi.pick"
            return Go("pin")
        if value == "3":
            ctx.data["after"] = "status.pick"
            return Go("pin")
        if value == "4":
            return Go("acct")
        if value in (BACK, HOME):
            # Back or home pressed on home itself (a second 0 after the one that led here): it is
            # shown again, not answered 'Invalid choice' nor counted among the three wrong answers
            return Stay()
        return Retry(ctx.t("hint.choice"))


class Resume(Screen):
    """Shown instead of the main menu when this phone's last session dropped mid-flow."""

    name = "resume"
    fixed = True

    def render(self, ctx: Context) -> View:
        return View(
            lines=(ctx.t("resume.title"),),
            options=(("1", ctx.t("resume.continue")), ("2", ctx.t("resume.restart"))),
        )

    def handle(self, ctx: Context, value: str) -> Outcome:
        if value == "1" and isinstance(ctx.data.get("saved"), dict):
            return Restore(ctx.data["saved"])
        if value in ("2", BACK, HOME):  # 0 and 00 work here as on every screen: the menu it stands for
            return Home()
        return Retry(ctx.t("hint.choice"))


SCREENS = (MainMenu(), Resume())
