"""The Elimu menu: every screen of every flow, assembled into one engine."""

from __future__ import annotations

from .engine import Engine, Screen
from .flows import account, activate, learners, main
from .flows.common import PinEntry


def all_screens() -> dict[str, Screen]:
    screens: list[Screen] = [*main.SCREENS, PinEntry(), *activate.SCREENS, *learners.SCREENS, *account.SCREENS]
    by_name = {screen.name: screen for screen in screens}
    if len(by_name) != len(screens):
        raise ValueError("two screens share a name")
    return by_name


def build_engine(*, strict: bool = False) -> Engine:
    """The Elimu menu engine (``strict`` raises on an over-long screen: for tests)."""
    return Engine(all_screens(), home="main", resume="resume", strict=strict)
