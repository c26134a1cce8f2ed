"""Events the registry announces without knowing who listens (the gateway counts them as metrics).

Each signal's sender is a short event name; keep personal data out of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from blinker import Namespace
from sqlalchemy import event
from sqlalchemy.orm import Mapper, Session, object_session

from .models import AuditEvent

_signals = Namespace()

#: One-time codes: sender is "sent", "limited", "verified" or "failed".
otp_event = _signals.signal("elimu.otp")

#: A per-phone limit the registry keeps (in the audit trail) refused a request: sender is the limit's
#: name (``activation_misses_per_phone``, ``results_misses_per_phone``), counted with the rate limits.
limit_event = _signals.signal("elimu.limit")

#: Audit trail rows, once their transaction has committed: sender is the row's action (a name the
#: code fixes: ``results_replied``, ``results_miss``, ``pin_choice_limit``, ...), ``count`` how many.
audit_event = _signals.signal("elimu.audit")

_AUDITED = "elimu.audited"  # session.info: the actions of the audit rows written in this transaction


def audited(session: Session, actions: Iterable[str]) -> None:
    """Announce audit rows written in ``session`` other than as ORM objects (a batch's one INSERT)
    when it commits; rows added as ``AuditEvent`` objects are noted by themselves."""
    session.info.setdefault(_AUDITED, []).extend(actions)


@event.listens_for(AuditEvent, "after_insert")
def _inserted(_mapper: Mapper, _connection: object, row: AuditEvent) -> None:
    session = object_session(row)
    if session is not None:
        audited(session, (row.action,))


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    actions = session.info.pop(_AUDITED, None)
    if actions:
        for action, count in Counter(actions).items():
            audit_event.send(action, count=count)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_AUDITED, None)
