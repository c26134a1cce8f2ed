"""The plain request and answer every USSD provider adapter converts to and from."""

from __future__ import annotations

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
