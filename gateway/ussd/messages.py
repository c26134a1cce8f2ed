"""The plain request and answer every USSD provider adapter converts to and from."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_FIELD = 200  # ids, codes and phone numbers longer than this are no provider's
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


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


def session_id_of(form: Mapping[str, str], name: str) -> str:
    """The hop's session id (field ``name``), trimmed; BadUssdRequest when it is missing, too long,
    or has a control character (it goes into log lines, where a newline would forge one)."""
    session_id = (form.get(name) or "").strip()
    if not session_id:
        raise BadUssdRequest(f"{name} is required")
    if len(session_id) > MAX_FIELD:
        raise BadUssdRequest(f"{name} is too long")
    if _CONTROL.search(session_id):
        raise BadUssdRequest(f"{name} has a control character")
    return session_id
