"""Queue an outbound SMS: a database row in the caller's transaction, dispatched to workers after commit."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from .arrays import insert_rows
from .db import PendingMessage, add_pending
from .models import PRIORITY_BY_KIND, MessageKind, MessageStatus, OutboundMessage, utcnow


def queue_sms(
    session: Session,
    recipient: str,
    kind: MessageKind | str,
    body: str,
    *,
    secret: str | None = None,
    link_id: str | None = None,
    announcement_id: int | None = None,
) -> OutboundMessage:
    """Write one outbox row; the job is enqueued only once the surrounding transaction commits.

    For secrets (OTPs) pass ``body`` with the secret replaced by ``{code}``-free redacted text and
    the clear text in ``secret``: the database keeps only ``body``, the clear text rides in the job.
    """
    kind = MessageKind(kind)
    message = OutboundMessage(
        recipient=recipient,
        kind=kind,
        body=body,
        priority=PRIORITY_BY_KIND[kind],
        status=MessageStatus.QUEUED,
        link_id=link_id,
        announcement_id=announcement_id,
        next_attempt_at=utcnow(),
    )
    session.add(message)
    session.flush()
    add_pending(session, PendingMessage(message.id, message.priority.value, secret))
    return message


def queue_many(
    session: Session,
    messages: Iterable[tuple[str, MessageKind | str, str, str | None]],
    *,
    announcement_id: int | None = None,
) -> list[int]:
    """Write several outbox rows in one statement (``registry.arrays.insert_rows``): ``(recipient,
    kind, body, link_id)`` each; their ids, ascending. Not for secrets: an OTP goes through
    ``queue_sms(secret=...)``."""
    now = utcnow()
    rows = []
    for recipient, kind, body, link_id in messages:
        kind = MessageKind(kind)
        rows.append({"recipient": recipient, "kind": kind.value, "body": body,
                     "priority": PRIORITY_BY_KIND[kind].value, "link_id": link_id})
    # what every row shares goes once, not as an array of 200 copies
    inserted = sorted(insert_rows(
        session, OutboundMessage.__table__, rows, [OutboundMessage.id, OutboundMessage.priority],
        status=MessageStatus.QUEUED, announcement_id=announcement_id, next_attempt_at=now, created_at=now,
        updated_at=now,
    ))
    for message_id, priority in inserted:
        add_pending(session, PendingMessage(message_id, priority))  # a plain value (registry.arrays)
    return [message_id for message_id, _ in inserted]
