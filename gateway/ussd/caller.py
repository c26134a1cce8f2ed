"""One read of the caller per session: the phone's language and account standing.

A session's first hop needs the phone's language (to greet it) and, a hop or two later, most
menus ask for its standing (linked, active, PIN lock). ``CallerServices`` fetches both in one
statement the first time either is asked for, keeps them in the session record, and answers
later hops from there; it forgets them as soon as the menus call any other service (an OTP, a
PIN check, an activation, a language change may each change the standing) and after
``CALLER_TTL`` seconds. Every other call passes straight through to the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from menus.services import Account
from registry.services.accounts import Caller

CALLER_TTL = 60.0  # seconds a read of the caller answers for, at most


class CallerServices:
    """The registry's services for one hop of ``phone``'s session, with the caller read memoised.

    ``saved`` is what ``saved_memo`` returned on the session's previous hop (or None)."""

    def __init__(self, services: Any, phone: str, saved: list[Any] | None, clock: Callable[[], datetime]) -> None:
        self._services = services
        self._phone = phone
        self._clock = clock
        self._memo: tuple[float, Caller] | None = _load(saved)

    def _caller(self) -> Caller:
        now = self._clock().timestamp()
        if self._memo is None or not 0 <= now - self._memo[0] <= CALLER_TTL:
            self._memo = (now, self._services.caller(self._phone))
        return self._memo[1]

    def language(self, phone: str) -> str | None:
        if phone != self._phone:
            return self._services.language(phone)
        return self._caller().language

    def account(self, phone: str) -> Account:
        if phone != self._phone:
            return self._services.account(phone)
        return self._caller().account(self._clock())

    def __getattr__(self, name: str) -> Any:
        self._memo = None  # any other call may change what was read
        return getattr(self._services, name)

    def saved_memo(self) -> list[Any] | None:
        """The memo as plain JSON data for the session record (None when there is none)."""
        if self._memo is None:
            return None
        read_at, caller = self._memo
        until = caller.locked_until.timestamp() if caller.locked_until is not None else None
        return [read_at, caller.language, caller.linked, caller.active, until]


def _load(saved: list[Any] | None) -> tuple[float, Caller] | None:
    try:
        read_at, language, linked, active, until = saved  # type: ignore[misc]
        locked_until = datetime.fromtimestamp(until, tz=UTC) if until is not None else None
        return float(read_at), Caller(language=language, linked=bool(linked), active=bool(active),
                                      locked_until=locked_until)
    except (TypeError, ValueError):
        return None  # none saved, or a record from before this field

