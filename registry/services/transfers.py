"""The NEMIS transfer state machine.

The receiving school requests a learner, the current school releases them, the receiving school
admits them. A school may also release a learner nobody has requested yet; then any other school
may admit. Until the admission either school may cancel the transfer: the learner stays enrolled
at the current school. Every other move is refused with ``TransferRefused`` and changes nothing.
On release, on admission and on cancelling a release each phone linked to the learner gets an
SMS notice, queued in the same transaction: the learner's masked name and schools to a phone
verified for the learner, a generic notice without learner data to any other
(``registry.services.notices``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import false, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from ..identifiers import InvalidUpi, normalize_upi
from ..models import EnrolmentState, Institution, Learner, Transfer, TransferState, utcnow
from .notices import DEFAULT_USSD_CODE, notify_guardians


class TransferRefused(Exception):
    """A transfer move the state machine does not allow; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# An UPDATE matching no row: on SQLite it takes the database's write lock, which nothing else gives
# before a transaction's first write (a SELECT ... FOR UPDATE is a plain read there).
_SQLITE_WRITE_LOCK = update(Learner).where(false()).values(upi=Learner.upi)


def _learner(session: Session, upi: str) -> Learner:
    """The learner with ``upi``, locked until the move commits: a move made at the same time on the
    same learner waits, then reads what this one left (on PostgreSQL the learner's row is locked,
    on SQLite the whole database)."""
    try:
        code = normalize_upi(upi)
    except InvalidUpi as exc:
        raise TransferRefused(str(exc)) from None
    if session.get_bind().dialect.name == "sqlite":
        session.execute(_SQLITE_WRITE_LOCK, execution_options={"synchronize_session": False})
    learner = session.scalars(select(Learner).where(Learner.upi == code).with_for_update()).first()
    if learner is None:
        raise TransferRefused(f"no learner has UPI {code}")
    return learner


def _institution(session: Session, code: str) -> Institution:
    key = (code or "").strip().upper()
    institution = session.scalars(select(Institution).where(Institution.code == key)).first()
    if institution is None:
        raise TransferRefused(f"no institution has code {key or '(blank)'}")
    return institution


def open_transfer(session: Session, learner: Learner) -> Transfer | None:
    """The learner's transfer that is requested or released (not yet admitted), if any."""
    query = (
        select(Transfer)
        .where(Transfer.learner_id == learner.id, Transfer.state.in_([TransferState.REQUESTED, TransferState.RELEASED]))
        .order_by(Transfer.id.desc())
    )
    return session.scalars(query.limit(1)).first()


def request_transfer(session: Session, upi: str, institution_code: str) -> Transfer:
    """The receiving school asks for a learner who is enrolled elsewhere."""
    learner = _learner(session, upi)
    target = _institution(session, institution_code)
    current = learner.institution
    if learner.enrolment_state is EnrolmentState.TRANSFER_REQUESTED:
        pending = open_transfer(session, learner)
        by = pending.to_institution.code if pending and pending.to_institution else "another school"
        raise TransferRefused(f"{learner.upi} already has a transfer requested by {by} (cancelled with cancel-transfer)")
    if learner.enrolment_state is EnrolmentState.RELEASED:
        raise TransferRefused(f"{learner.upi} is already released by {current.code}: the receiving school admits")
    if target.id == current.id:
        raise TransferRefused(f"{learner.upi} is already enrolled at {target.code}")
    transfer = Transfer(
        learner=learner,
        from_institution=current,
        to_institution=target,
        state=TransferState.REQUESTED,
        requested_at=utcnow(),
    )
    session.add(transfer)
    learner.enrolment_state = EnrolmentState.TRANSFER_REQUESTED
    session.flush()
    return transfer


def release(
    session: Session, upi: str, institution_code: str | None = None, *, ussd_code: str = DEFAULT_USSD_CODE
) -> Transfer:
    """The current school releases a learner (requested by another school, or not yet requested);
    ``institution_code``, when given, must be that school (a mistyped UPI names another school's
    learner); ``ussd_code`` is the service code generic notices name (``ELIMU_USSD_CODE``)."""
    learner = _learner(session, upi)
    current = learner.institution
    if institution_code is not None and _institution(session, institution_code).id != current.id:
        raise TransferRefused(
            f"{learner.upi} is enrolled at {current.code}, not {institution_code.strip().upper()}: only {current.code} can release"
        )
    if learner.enrolment_state is EnrolmentState.RELEASED:
        raise TransferRefused(f"{learner.upi} is already released by {current.code}")
    transfer = open_transfer(session, learner) if learner.enrolment_state is EnrolmentState.TRANSFER_REQUESTED else None
    now = utcnow()
    if transfer is None:
        transfer = Transfer(learner=learner, from_institution=current, state=TransferState.RELEASED)
        session.add(transfer)
    transfer.state = TransferState.RELEASED
    transfer.released_at = now
    learner.enrolment_state = EnrolmentState.RELEASED
    session.flush()
    target = transfer.to_institution
    notify_guardians(session, learner, "released", school=current.name, other=target.name if target else None,
                     ussd_code=ussd_code)
    return transfer


def admit(session: Session, upi: str, institution_code: str, *, ussd_code: str = DEFAULT_USSD_CODE) -> Transfer:
    """The receiving school admits a released learner; the learner's school changes (``ussd_code``:
    as for :func:`release`)."""
    learner = _learner(session, upi)
    target = _institution(session, institution_code)
    current = learner.institution
    if learner.enrolment_state is EnrolmentState.ENROLLED:
        raise TransferRefused(f"{learner.upi} is enrolled at {current.code} and not released: that school releases first")
    transfer = open_transfer(session, learner)
    if learner.enrolment_state is EnrolmentState.TRANSFER_REQUESTED or transfer is None:
        raise TransferRefused(f"{learner.upi} awaits release by {current.code}: that school releases first")
    if transfer.to_institution_id is not None and transfer.to_institution_id != target.id:
        raise TransferRefused(
            f"{learner.upi} was released to {transfer.to_institution.code}: only that school can admit"  # type: ignore[union-attr]
        )
    if target.id == transfer.from_institution_id:
        raise TransferRefused(
            f"{learner.upi} was released by {target.code}: a school cannot admit its own learner back; "
            "to keep the learner, cancel the transfer (cancel-transfer)"
        )
    transfer.to_institution = target
    transfer.state = TransferState.ADMITTED
    transfer.admitted_at = utcnow()
    learner.institution = target
    learner.enrolment_state = EnrolmentState.ENROLLED
    session.flush()
    leaving = transfer.from_institution  # not ``current``: an import may have moved the learner already
    notify_guardians(session, learner, "admitted", school=target.name, other=leaving.name, ussd_code=ussd_code)
    return transfer


def cancel_transfer(
    session: Session, upi: str, institution_code: str | None = None, *, ussd_code: str = DEFAULT_USSD_CODE
) -> Transfer:
    """Either school withdraws a transfer not yet admitted (requested or released): the learner stays
    enrolled at the current school. ``institution_code``, when given, must be one of the two
    schools. Guardians told of a release get a notice that it is cancelled (``ussd_code``: as for
    :func:`release`)."""
    learner = _learner(session, upi)
    current = learner.institution
    transfer = open_transfer(session, learner) if learner.enrolment_state is not EnrolmentState.ENROLLED else None
    if transfer is None:
        raise TransferRefused(f"{learner.upi} has no transfer in progress: enrolled at {current.code}")
    if institution_code is not None:
        _check_party(transfer, _institution(session, institution_code))
    was_released = transfer.state is TransferState.RELEASED
    transfer.state = TransferState.CANCELLED
    learner.enrolment_state = EnrolmentState.ENROLLED
    session.flush()
    if was_released:
        notify_guardians(session, learner, "cancelled", school=current.name, ussd_code=ussd_code)
    return transfer


def _check_party(transfer: Transfer, school: Institution) -> None:
    """Refuse ``school`` unless it is the school the learner leaves or the one that asked for them."""
    if school.id not in (transfer.from_institution_id, transfer.to_institution_id):
        parties = " or ".join(i.code for i in (transfer.from_institution, transfer.to_institution) if i is not None)
        raise TransferRefused(f"{school.code} is not a school of {transfer.learner.upi}'s transfer: only {parties} can cancel it")


@dataclass(frozen=True)
class TransferInProgress:
    """A transfer requested or released and not yet admitted, as a school administrator follows it."""

    upi: str
    masked_name: str
    state: TransferState
    from_code: str
    to_code: str | None  # None: released to any school
    since: datetime  # when it reached its state


def transfers_in_progress(session: Session, institution_code: str | None = None) -> list[TransferInProgress]:
    """Every transfer neither admitted nor cancelled, longest waiting first; only those of
    ``institution_code`` (leaving or receiving) when given."""
    leaving, receiving = aliased(Institution), aliased(Institution)
    since = func.coalesce(Transfer.released_at, Transfer.requested_at, Transfer.created_at)
    query = (
        select(Learner, Transfer.state, leaving.code, receiving.code, since)
        .join(Learner, Learner.id == Transfer.learner_id)
        .join(leaving, leaving.id == Transfer.from_institution_id)
        .outerjoin(receiving, receiving.id == Transfer.to_institution_id)
        .where(Transfer.state.in_([TransferState.REQUESTED, TransferState.RELEASED]))
        .order_by(since, Transfer.id)
    )
    if institution_code is not None:
        school = _institution(session, institution_code)
        query = query.where(or_(Transfer.from_institution_id == school.id, Transfer.to_institution_id == school.id))
    return [
        TransferInProgress(learner.upi, learner.masked_name, state, from_code, to_code, at)
        for learner, state, from_code, to_code, at in session.execute(query)
    ]
