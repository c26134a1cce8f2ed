"""Withdrawing queued outbound messages before they reach the provider, with the audit trail's record.

A message naming a learner is audited when it is queued (``transfer_notice``, ``upi_sent``,
``results_replied``): the disclosure is recorded with the message, in its transaction. When such a
message is withdrawn before a worker handed it to AT (its phone unlinked from the learner, the
phone's data erased, or, for a transfer notice or a UPI message, the phone found no longer verified
for every learner it names when a worker takes it), the learner's data never left: each
withdrawal is recorded as ``disclosure_withdrawn`` (the phone, the learner, the message id as its
reference, the kind and why in its detail), so ``elimu audit`` shows that the disclosure recorded
for it did not happen. Announcements and codes are not disclosures of a learner and are not recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from ..identifiers import upi_tokens
from ..models import (
    AuditEvent,
    Guardian,
    GuardianLink,
    Learner,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    utcnow,
)
from ..models.audit import third_word
from ..outbox import Claimed
from .audit import RESULTS_ACTION, record_disclosure
from .notices import NOTICE_ACTION

WITHDRAWN_ACTION = "disclosure_withdrawn"  # its reference: the outbound message id; its learner: the one named
UPI_ACTION = "upi_sent"


@dataclass(frozen=True)
class Withdrawn:
    """One message ended unsent."""

    id: int
    kind: MessageKind
    body: str


def withdraw_messages(
    session: Session, phone: str, which: ColumnElement[bool], reason: str, *, learner_id: int | None = None,
) -> list[Withdrawn]:
    """End ``phone``'s messages matching ``which`` still queued (``failed`` with ``reason``) in the
    caller's transaction, and record a ``disclosure_withdrawn`` row for each learner a withdrawn
    message named (``learner_id``: the learner its UPIs and results were about, when the caller
    knows it). A row a worker has claimed is in flight and left alone; a send job of an ended row
    finds it no longer queued and sends nothing."""
    rows = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.recipient == phone, OutboundMessage.status == MessageStatus.QUEUED, which)
        .values(status=MessageStatus.FAILED, failure_reason=reason, next_attempt_at=None, updated_at=utcnow())
        .returning(OutboundMessage.id, OutboundMessage.kind, OutboundMessage.body)
        .execution_options(synchronize_session=False)
    ).all()
    withdrawn = [Withdrawn(row.id, MessageKind(row.kind), row.body) for row in rows]
    record_withdrawals(session, phone, withdrawn, reason, learner_id=learner_id)
    return withdrawn


def record_withdrawals(
    session: Session, phone: str, messages: Iterable[Withdrawn], reason: str, *, learner_id: int | None = None,
) -> int:
    """Add a ``disclosure_withdrawn`` row for each (message, learner) pair among ``messages`` that
    carried an audited disclosure to ``phone``: a transfer notice by the message id its row names;
    a UPI or results message by ``learner_id`` when given, else by the phone's ``upi_sent`` and
    ``results_replied`` rows whose UPI or index number its text holds. Returns the rows added."""
    messages = [m for m in messages if m.kind in (MessageKind.NOTICE, MessageKind.UPI, MessageKind.REPLY)]
    if not messages:
        return 0
    pairs = _notice_pairs(session, phone, [m.id for m in messages if m.kind == MessageKind.NOTICE])
    others = [m for m in messages if m.kind != MessageKind.NOTICE]
    if others and learner_id is not None:
        pairs |= {(m.id, learner_id, m.kind.value) for m in others}
    elif others:
        pairs |= _content_pairs(session, phone, others)
    for message_id, learner, kind in sorted(pairs, key=lambda p: (p[0], p[1] or 0)):
        record_disclosure(session, phone=phone, learner_id=learner, action=WITHDRAWN_ACTION, channel="sms",
                          reference=str(message_id), detail=f"{kind} {reason}"[:200])
    return len(pairs)


def _notice_pairs(session: Session, phone: str, ids: list[int]) -> set[tuple[int, int | None, str]]:
    if not ids:
        return set()
    rows = session.execute(select(AuditEvent.reference, AuditEvent.learner_id).where(
        AuditEvent.phone == phone, AuditEvent.action == NOTICE_ACTION,
        AuditEvent.reference.in_([str(i) for i in ids])))
    return {(int(reference), learner, MessageKind.NOTICE.value) for reference, learner in rows}


def _content_pairs(session: Session, phone: str, messages: list[Withdrawn]) -> set[tuple[int, int | None, str]]:
    """The learners a UPI or results message names, by the phone's own disclosure rows (an erasure:
    a CLI command, once per phone)."""
    upis = session.execute(select(Learner.upi, Learner.id).join(AuditEvent, AuditEvent.learner_id == Learner.id)
                           .where(AuditEvent.phone == phone, AuditEvent.action == UPI_ACTION).distinct()).all()
    results = session.execute(select(third_word(AuditEvent.detail), AuditEvent.learner_id).where(
        AuditEvent.phone == phone, AuditEvent.action == RESULTS_ACTION).distinct()).all()
    pairs: set[tuple[int, int | None, str]] = set()
    for m in messages:
        named = upis if m.kind == MessageKind.UPI else results
        pairs |= {(m.id, learner, m.kind.value) for token, learner in named if token and token in m.body}
    return pairs


def withdrawn_notices(session: Session, events: Iterable[AuditEvent]) -> set[tuple[str, str]]:
    """The (phone, message id) of those of ``events`` that are transfer notices later withdrawn
    unsent: ``elimu audit`` marks them."""
    wanted = {(e.phone, e.reference) for e in events if e.action == NOTICE_ACTION and e.reference}
    if not wanted:
        return set()
    rows = session.execute(select(AuditEvent.phone, AuditEvent.reference).where(
        AuditEvent.phone.in_(sorted({p for p, _ in wanted})), AuditEvent.action == WITHDRAWN_ACTION,
        AuditEvent.reference.in_(sorted({r for _, r in wanted}))))
    return {(phone, reference) for phone, reference in rows} & wanted


UNVERIFIED = "not sent: the phone is no longer verified for the learner"
# The kinds ``withdraw_unverified`` checks: a batch without any costs no query.
CHECKED_KINDS = frozenset({MessageKind.NOTICE.value, MessageKind.UPI.value})
_ITEMS = "; "  # between the learners of a UPI text (``sms_replies._upi_reply``); USSD's names one


def names_learners(claimed: Iterable[Claimed]) -> bool:
    """Whether any of ``claimed`` is of a kind ``withdraw_unverified`` checks."""
    return any(c.kind in CHECKED_KINDS for c in claimed)


def withdraw_unverified(session: Session, claimed: Sequence[Claimed]) -> list[Claimed]:
    """The send-time check of ``workers.sending.claim``: of the rows just claimed, end those naming a
    learner whose phone is no longer verified for that learner (unlinked, or its data erased, after
    the message was queued: a transfer or a UPI request committing at the same moment as the unlink
    queues one the unlink could not see), ``failed`` with ``UNVERIFIED`` and recorded as
    ``disclosure_withdrawn``; return the others. A transfer notice names the learner of its audit
    row; a UPI message every learner whose UPI it holds (``_unverified_upis``). One indexed query for
    a batch holding notices and one for a batch holding UPI messages (their audit rows by phone),
    none for any other batch (announcements, codes, results replies: ``names_learners``). Rows
    written already claimed (the inbound drain's) get it from ``workers.sending.check_claimed``."""
    ended = _unverified_notices(session, claimed) | _unverified_upis(session, claimed)
    if not ended:
        return list(claimed)
    session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id.in_(sorted(ended)), OutboundMessage.status == MessageStatus.SUBMITTED)
        .values(status=MessageStatus.FAILED, failure_reason=UNVERIFIED, next_attempt_at=None, submitted_at=None,
                attempts=OutboundMessage.attempts - 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    for message_id, (kind, phone, learners) in sorted(ended.items()):
        for learner in sorted(learners, key=lambda x: x or 0):
            record_disclosure(session, phone=phone, learner_id=learner, action=WITHDRAWN_ACTION, channel="sms",
                              reference=str(message_id), detail=f"{kind.value} {UNVERIFIED}"[:200])
    return [c for c in claimed if c.id not in ended]


_Ended = dict[int, tuple[MessageKind, str, set[int | None]]]  # message id -> (kind, phone, learners named)


def _verified(phone: ColumnElement[str], learner_id: ColumnElement[int | None]) -> ColumnElement[bool]:
    """Whether ``phone`` is verified for ``learner_id`` (a correlated EXISTS)."""
    return (
        select(GuardianLink.id).join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .where(Guardian.phone == phone, GuardianLink.learner_id == learner_id, GuardianLink.verified_at.is_not(None))
        .exists()
    )


def _unverified_notices(session: Session, claimed: Sequence[Claimed]) -> _Ended:
    """The claimed transfer notices whose phone is not verified for the learner their audit row names."""
    notices = {c.id: c for c in claimed if c.kind == MessageKind.NOTICE}
    if not notices:
        return {}
    gone = session.execute(select(AuditEvent.reference, AuditEvent.phone, AuditEvent.learner_id).where(
        AuditEvent.phone.in_(sorted({c.recipient for c in notices.values()})), AuditEvent.action == NOTICE_ACTION,
        AuditEvent.reference.in_([str(i) for i in notices]),
        ~_verified(AuditEvent.phone, AuditEvent.learner_id))).all()
    ended: _Ended = {}
    for reference, phone, learner in gone:
        if notices[int(reference)].recipient == phone:
            ended.setdefault(int(reference), (MessageKind.NOTICE, phone, set()))[2].add(learner)
    return ended


def _unverified_upis(session: Session, claimed: Sequence[Claimed]) -> _Ended:
    """The claimed UPI messages whose phone is not verified for every learner they name, or that hold
    a UPI naming no learner still on the registry. A UPI message's audit row (``upi_sent``) names the
    USSD session or the inbound SMS, not the message, so a message names each learner with a
    ``upi_sent`` row for its phone whose UPI is a word of its text (``identifiers.upi_tokens``); the
    phone's rows only, so a word of the text that happens to be another learner's UPI names nobody.

    Every learner, not any: one text carries them all, and sending it discloses each UPI it holds,
    so a phone unlinked from one of two children must not get the unlinked child's UPI because it is
    still verified for the other; the parent asks again and gets the UPIs still theirs.

    A learner deleted after the message was queued leaves its UPI in the text but no learner behind
    it (its ``upi_sent`` rows lose their learner, its links go): the text lists more learners (one a
    ``_ITEMS``-separated item, ``_items``) than the UPIs still naming one, and is ended, its audit
    row for the deleted learner naming none."""
    upis = {c.id: (c, upi_tokens(c.body)) for c in claimed if c.kind == MessageKind.UPI}
    if not upis:
        return {}
    words = sorted(set().union(*(tokens for _, tokens in upis.values())))
    rows = session.execute(
        select(AuditEvent.phone, Learner.id, Learner.upi, _verified(AuditEvent.phone, Learner.id))
        .join(Learner, Learner.id == AuditEvent.learner_id)
        .where(AuditEvent.phone.in_(sorted({c.recipient for c, _ in upis.values()})),
               AuditEvent.action == UPI_ACTION, Learner.upi.in_(words or [""]))
        .distinct()
    ).all()
    ended: _Ended = {}
    for message_id, (message, tokens) in upis.items():
        named = {(learner, bool(verified)) for phone, learner, upi, verified in rows
                 if phone == message.recipient and upi in tokens}
        learners: set[int | None] = {learner for learner, _ in named}
        gone = len(learners) < _items(message.body, tokens)  # a UPI whose learner was deleted
        if gone or not all(verified for _, verified in named):
            ended[message_id] = (MessageKind.UPI, message.recipient, learners | {None} if gone else learners)
    return ended


def _items(body: str, tokens: set[str]) -> int:
    """How many learners a UPI text lists: each item ends with its UPI, so a separator counts only
    after a word a UPI could be (one of ``tokens``); a '; ' inside a learner's name (a school's file
    may run two first names together so) splits no item."""
    parts = body.split(_ITEMS)
    return 1 + sum(1 for part in parts[:-1] if part.rpartition(" ")[2] in tokens)
