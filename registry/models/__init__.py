"""All tables, importable from one place (Alembic reads ``Base.metadata``)."""

from . import unlinking  # noqa: F401 - registers the trigger that sets guardians.unlinked_at
from .accounts import OneTimeCode
from .audit import AuditEvent, UssdSessionEvent
from .base import Base, Timestamped, utcnow
from .messages import (
    PRIORITY_BY_KIND,
    Announcement,
    InboundMessage,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    Priority,
)
from .results import ExamResult, ExamSeries
from .schools import (
    EnrolmentState,
    Guardian,
    GuardianLink,
    Institution,
    Learner,
    PhoneSetting,
    Transfer,
    TransferState,
)

__all__ = [
    "PRIORITY_BY_KIND",
    "Announcement",
    "AuditEvent",
    "Base",
    "EnrolmentState",
    "ExamResult",
    "ExamSeries",
    "Guardian",
    "GuardianLink",
    "InboundMessage",
    "Institution",
    "Learner",
    "MessageKind",
    "MessageStatus",
    "OneTimeCode",
    "OutboundMessage",
    "PhoneSetting",
    "Priority",
    "Timestamped",
    "Transfer",
    "TransferState",
    "UssdSessionEvent",
    "utcnow",
]
