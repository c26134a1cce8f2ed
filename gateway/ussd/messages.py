"""The plain request and answer every USSD provider adapter converts to and from."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field


class BadUssdRequest(ValueError):
    """A request the provider should not have sent (e.g. no session id); one-line reason."""


@dataclass(frozen=True)
class UssdRequest:
    """One hop, provider-neutral. ``phone`` is E.164, or None when not a valid Kenyan mobile."""

    provider: str
    session_id: str
    phone: str | None
    service_code: str
    network: str
    text: str  # all inputs so far, as the provider joined them
    inputs: list[str] = field(default_factory=list)  # ``text`` split on ``*``


@dataclass(frozen=True)
class UssdAnswer:
    """What to show; ``end`` closes the session."""

    text: str
    end: bool


def ascii_digits(text: str) -> str:
    """``text`` with every decimal digit of another script (Arabic-Indic ``\u0664``, full-width
    ``\uff14``...) as its ASCII digit: a phone set to such a language sends its own digits, and
    the menus read ASCII ones (a choice, a PIN, a code). Nothing else changes."""
    if text.isascii():
        return text
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)
