"""AT's end-of-session notifications, stored one row per session (upserted, so replays are harmless)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from registry.db import Database
from registry.models import UssdSessionEvent

from ..sms.africastalking import BadCallback, sender_number


def _int(value: str | None) -> int | None:
    try:
        number = int((value or "").strip())
    except ValueError:
        return None
    return number if 0 <= number < 2**31 else None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # never stored (PostgreSQL refuses a NUL outright)


def _cut(value: str | None, length: int | None) -> str | None:
    value = _CONTROL.sub("", value or "").strip()
    if not value:
        return None
    return value[:length] if length else value[:4000]


def input_shape(value: str | None) -> str | None:
    """AT's ``input`` (every input of the session, joined by ``*``) with only the menu choices kept:
    an input longer than two characters (a PIN, a one-time code, a date of birth, a birth
    certificate or index number) becomes its length in brackets, ``1*12345678*4826`` ->
    ``1*[8]*[4]``. Where sessions stop is kept; what the caller typed is never stored. A shape is
    its own shape (a spooled event is shaped before it is spooled, and again when replayed)."""
    value = _cut(value, None)
    if value is None:
        return None
    return "*".join(part if len(part) <= 2 or _SHAPED.fullmatch(part) else f"[{len(part)}]"
                    for part in value.split("*"))


_SHAPED = re.compile(r"\[[0-9]{1,4}\]")


def event_fields(form: Mapping[str, str]) -> dict[str, object] | None:
    """The columns to store from AT's form; None without a session id."""
    session_id = _cut(form.get("sessionId"), 100)
    if session_id is None:
        return None
    try:  # E.164 (a Kenyan number normalised, another country's kept), never as it came
        phone: str | None = sender_number((form.get("phoneNumber") or "")[:64])
    except BadCallback:
        phone = None
    return {
        "session_id": session_id,
        "phone": phone,
        "service_code": _cut(form.get("serviceCode"), 32),
        "network_code": _cut(form.get("networkCode"), 16),
        "status": _cut(form.get("status"), 16),
        "duration_ms": _int(form.get("durationInMillis")),
        "hops_count": _int(form.get("hopsCount")),
        "last_input": input_shape(form.get("input")),
        "error_message": _cut(form.get("errorMessage"), None),
        "cost": _cut(form.get("cost"), 32),
        "event_date": _cut(form.get("date"), 32),
    }


def record_event(db: Database, fields: dict[str, object]) -> None:
    """Insert or update the session's row (a concurrent insert of the same session turns into an update)."""
    for _ in range(2):
        try:
            with db.transaction() as session:
                row = session.scalars(
                    select(UssdSessionEvent).where(UssdSessionEvent.session_id == fields["session_id"])
                ).first()
                if row is None:
                    session.add(UssdSessionEvent(**fields))
                else:
                    for name, value in fields.items():
                        setattr(row, name, value)
            return
        except IntegrityError:
            continue
