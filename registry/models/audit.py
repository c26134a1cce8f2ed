"""The disclosure audit trail and USSD end-of-session events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from .base import Base, Timestamped, utcnow


class third_word(FunctionElement[str]):
    """The third space-separated word of a text: the index or assessment number in a results
    reply's detail (``"KCSE 2025 36611030002"``). On PostgreSQL ``split_part(x, ' ', 3)``; on
    SQLite what follows the second space, the same for that detail (no number holds a space).
    A query must use this same expression to be served by ``ix_audit_events_index_number``."""

    type = String()
    name = "third_word"
    inherit_cache = True


@compiles(third_word, "postgresql")
def _third_word_postgresql(element: third_word, compiler: SQLCompiler, **kw: Any) -> str:
    return f"split_part({compiler.process(element.clauses, **kw)}, ' ', 3)"


@compiles(third_word)
def _third_word_sqlite(element: third_word, compiler: SQLCompiler, **kw: Any) -> str:
    text = compiler.process(element.clauses, **kw)
    return f"substr({text}, instr({text}, ' ') + instr(substr({text}, instr({text}, ' ') + 1), ' ') + 1)"


class first_two_words(FunctionElement[str]):
    """The first two space-separated words of a text: the exam series of a results reply's detail
    (``"KCSE 2025"`` of ``"KCSE 2025 36611030002"``). On PostgreSQL the two ``split_part``s joined
    by a space (bracketed as PostgreSQL shows it back: Alembic's compare needs that); on SQLite what
    comes before the second space, the same for that detail. A query must use this same
    expression to be served by ``ix_audit_events_series``."""

    type = String()
    name = "first_two_words"
    inherit_cache = True


@compiles(first_two_words, "postgresql")
def _first_two_words_postgresql(element: first_two_words, compiler: SQLCompiler, **kw: Any) -> str:
    text = compiler.process(element.clauses, **kw)
    return f"((split_part({text}, ' ', 1) || ' ') || split_part({text}, ' ', 2))"


@compiles(first_two_words)
def _first_two_words_sqlite(element: first_two_words, compiler: SQLCompiler, **kw: Any) -> str:
    text = compiler.process(element.clauses, **kw)
    return f"substr({text}, 1, instr({text}, ' ') + instr(substr({text}, instr({text}, ' ') + 1), ' ') - 1)"


class AuditEvent(Base):
    """One disclosure of a learner datum: who (phone), whose (learner), what, where, when."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_learner", "learner_id", "at"),
        Index("ix_audit_events_phone", "phone", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    phone: Mapped[str] = mapped_column(String(16))
    learner_id: Mapped[int | None] = mapped_column(ForeignKey("learners.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(40))  # upi_sent, status_shown, results_replied, ...
    channel: Mapped[str] = mapped_column(String(8))  # ussd | sms | cli
    reference: Mapped[str | None] = mapped_column(String(100))  # session or message id
    detail: Mapped[str | None] = mapped_column(String(200))


# The index number of each results reply (``elimu audit --index`` and ``--learner``; migration 0007).
Index("ix_audit_events_index_number", third_word(AuditEvent.detail))
# The results replies of an exam series, newest first (``elimu audit --series``, ``answers_since``; migration 0008).
Index("ix_audit_events_series", first_two_words(AuditEvent.detail), AuditEvent.at, AuditEvent.id)


class UssdSessionEvent(Timestamped, Base):
    """AT's end-of-session notification, one row per session (upserted)."""

    __tablename__ = "ussd_session_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(String(100), unique=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    service_code: Mapped[str | None] = mapped_column(String(32))
    network_code: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(16))
    duration_ms: Mapped[int | None]
    hops_count: Mapped[int | None]
    last_input: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    cost: Mapped[str | None] = mapped_column(String(32))
    event_date: Mapped[str | None] = mapped_column(String(32))
