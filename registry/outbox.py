"""Queue an outbound SMS: a database row in the caller's transaction, dispatched to workers after commit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from .arrays import insert_rows
from .db import PendingMessage, add_pending
from .models import PRIORITY_BY_KIND, MessageKind, MessageStatus, OutboundMessage, utcnow

_T = OutboundMessage.__table__
# A send never takes this long (AT timeouts ~13 s, throttle waits short): a row submitted longer
# ago and not accepted lost its worker (the reconciler sends it again).
LEASE = timedelta(minutes=5)
Message = tuple[str, MessageKind | str, str, str | None]  # (recipient, kind, body, link_id)
OPTED_OUT = "not sent: the phone opted out (STOP)"
CANCELLED = "not sent: the announcement was cancelled"


@dataclass(frozen=True)
class Claimed:
    """An outbox row a worker has claimed (``submitted``) and is about to send."""

    id: int
    recipient: str
    body: str
    kind: str
    link_id: str | None
    attempts: int
    priority: str
    announcement_id: int | None


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
    session: Session, messages: Iterable[Message], *, announcement_id: int | None = None
) -> list[int]:
    """Write several outbox rows in one statement (``registry.arrays.insert_rows``): ``(recipient,
    kind, body, link_id)`` each; their ids, ascending. Not for secrets: an OTP goes through
    ``queue_sms(secret=...)``."""
    now = utcnow()
    # what every row shares goes once, not as an array of 200 copies
    inserted = sorted(insert_rows(
        session, _T, _rows(messages), [OutboundMessage.id, OutboundMessage.priority],
        status=MessageStatus.QUEUED, announcement_id=announcement_id, next_attempt_at=now, created_at=now,
        updated_at=now,
    ))
    for message_id, priority in inserted:
        add_pending(session, PendingMessage(message_id, priority))  # a plain value (registry.arrays)
    return [message_id for message_id, _ in inserted]


def queue_claimed(session: Session, messages: Iterable[Message], provider: str) -> list[Claimed]:
    """Write outbox rows already claimed for ``provider`` by the caller, which sends them itself
    once the transaction commits (no job is dispatched). Each row is as ``workers.sending.claim``
    leaves a queued one (``submitted``, one attempt), without that second write of every row; a
    caller that dies before recording the results leaves them to the reconciler, as a claim does."""
    now = utcnow()
    returning = [_T.c.id, _T.c.recipient, _T.c.body, _T.c.kind, _T.c.link_id, _T.c.priority]
    inserted = insert_rows(
        session, _T, _rows(messages), returning, status=MessageStatus.SUBMITTED, attempts=1, provider=provider,
        submitted_at=now, next_attempt_at=now, created_at=now, updated_at=now,
    )
    return [Claimed(message_id, recipient, body, kind, link_id, 1, priority, None)
            for message_id, recipient, body, kind, link_id, priority in sorted(inserted)]


def cancel_announcements(session: Session, recipient: str) -> int:
    """End ``recipient``'s announcements still waiting (``queued``, first time or a retry): ``failed``,
    the reason saying it opted out, in the caller's transaction. Other kinds (codes, replies,
    transfer notices) are left alone, and so is a row a worker has claimed (in flight). A send job
    of an ended row finds it no longer queued and sends nothing (``workers.sending.claim``)."""
    return cancel_queued(session, recipient, (MessageKind.ANNOUNCEMENT,), OPTED_OUT)


def cancel_queued(session: Session, recipient: str, kinds: Iterable[MessageKind], reason: str) -> int:
    """End ``recipient``'s messages of ``kinds`` still waiting (``queued``): ``failed`` with ``reason``,
    in the caller's transaction; a row a worker has claimed is in flight and left alone."""
    result = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.recipient == recipient, OutboundMessage.kind.in_(list(kinds)),
               OutboundMessage.status == MessageStatus.QUEUED)
        .values(status=MessageStatus.FAILED, failure_reason=reason, next_attempt_at=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def _rows(messages: Iterable[Message]) -> list[dict[str, str | None]]:
    rows = []
    for recipient, kind, body, link_id in messages:
        kind = MessageKind(kind)
        rows.append({"recipient": recipient, "kind": kind.value, "body": body,
                     "priority": PRIORITY_BY_KIND[kind].value, "link_id": link_id})
    return rows
