"""Answers to inbound SMS commands, with the results disclosure policy.

Results go only to a sender who gives one of the candidate's names (every name given must be one of
them) or who is an activated guardian of that learner; before ``elimu results release`` the answer is
that they are not yet out. A results reply carries the mean grade and every subject grade exactly as
imported, in GSM-7, within two SMS segments. Every disclosure is an audit event in the same
transaction as the reply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .. import gsm
from ..arrays import among
from ..models import ExamResult, ExamSeries, Learner, MessageKind, PhoneSetting, utcnow
from .audit import record_disclosure
from .learners import find_guardian, is_linked, learners_for_phone
from .results import find_result
from .sms_commands import EXAMS, INDEX_EXAMS, MAX_NAMES, Command, CommandKind, name_key, name_keys
from .sms_texts import text

MAX_SEGMENTS = 2
MAX_UPIS = 6


@dataclass(frozen=True)
class Series:
    exam: str
    year: int
    released: bool


@dataclass(frozen=True)
class FoundResult:
    """What a results reply reads of an ``ExamResult``, as :func:`prefetch_results` reads a batch's:
    plain columns, without the ORM's identity map and per-object state (half of the lookup's cost)."""

    learner_id: int | None
    index_number: str
    candidate_name: str
    mean_grade: str
    points: int | None
    subjects: str
    series: Series


Result = ExamResult | FoundResult
# (exam, number, year) -> the result that answers, as ``registry.services.results.find_result`` picks it
ResultLookup = Callable[[str, str, int | None], Result | None]


class Gate(Protocol):
    """Per-phone limits kept outside the database (Redis in production)."""

    def first_unknown_reply(self, phone: str) -> bool:
        """True at most once per phone per 10 minutes (the help answer to an unknown text)."""

    def results_allowed(self, phone: str) -> bool:
        """Whether this phone may make one more results query now."""


class OpenGate:
    """No limits (tests and tools)."""

    def first_unknown_reply(self, phone: str) -> bool:
        return True

    def results_allowed(self, phone: str) -> bool:
        return True


@dataclass(frozen=True)
class Reply:
    text: str
    kind: MessageKind = MessageKind.REPLY


def reply_language(command: Command, stored: str | None) -> str:
    """The keyword's own language (MSAADA, SITISHA: Kiswahili; HELP, STOP: English), else the phone's."""
    return command.language or stored or "en"


def respond(
    session: Session,
    *,
    message_id: int,
    phone: str,
    command: Command,
    stored_language: str | None,
    gate: Gate,
    ussd_code: str,
    lookup: ResultLookup | None = None,
) -> Reply | None:
    """The reply to one inbound command from ``phone`` (E.164), or None when none is due.
    ``lookup`` answers results queries (default: one ``find_result`` query each; a batch passes
    :func:`prefetch_results`)."""
    language = reply_language(command, stored_language)
    if command.kind is CommandKind.HELP:
        return Reply(text("help", language, ussd=ussd_code))
    if command.kind in (CommandKind.STOP, CommandKind.START):
        set_opted_out(session, phone, command.kind is CommandKind.STOP)
        return Reply(text("stopped" if command.kind is CommandKind.STOP else "started", language))
    if command.kind is CommandKind.UPI:
        return _upi_reply(session, phone, message_id, language, ussd_code)
    if command.kind is CommandKind.RESULTS:
        lookup = lookup or (lambda exam, number, year: find_result(session, exam, number, year))
        return _results_reply(session, phone, message_id, command, language, gate, lookup)
    if gate.first_unknown_reply(phone):
        return Reply(text("unknown", language, ussd=ussd_code))
    return None


# --- results -------------------------------------------------------------------------------------


def prefetch_results(session: Session, commands: Iterable[Command]) -> ResultLookup:
    """One query for the results of every well-formed results command of a batch; the lookup it
    returns picks among them exactly as ``find_result`` does (that year; else the latest released
    year; else the latest year)."""
    numbers: dict[str, set[str]] = {}  # exam -> index numbers: one array of numbers per exam
    for c in commands:
        if c.kind is CommandKind.RESULTS and c.valid_number:
            numbers.setdefault(c.exam, set()).add(c.number)  # type: ignore[arg-type]
    found: dict[tuple[str, str], list[FoundResult]] = {}
    if numbers:
        rows = session.execute(
            select(ExamResult.learner_id, ExamResult.index_number, ExamResult.candidate_name, ExamResult.mean_grade,
                   ExamResult.points, ExamResult.subjects, ExamSeries.exam, ExamSeries.year, ExamSeries.released_at)
            .join(ExamSeries, ExamSeries.id == ExamResult.series_id)
            .where(or_(*(and_(ExamSeries.exam == exam, among(session, ExamResult.index_number, sorted(wanted)))
                         for exam, wanted in sorted(numbers.items()))))
            .order_by(ExamSeries.year.desc())
        )
        for learner_id, number, name, mean, points, subjects, exam, year, released_at in rows:
            result = FoundResult(learner_id, number, name, mean, points, subjects or "",
                                 Series(exam, year, released_at is not None))
            found.setdefault((exam, number), []).append(result)

    def lookup(exam: str, number: str, year: int | None) -> FoundResult | None:
        candidates = found.get((exam, number), [])
        if year is not None:
            return next((r for r in candidates if r.series.year == year), None)
        released = [r for r in candidates if r.series.released]
        return (released or candidates or [None])[0]

    return lookup


def _results_reply(
    session: Session, phone: str, message_id: int, command: Command, language: str, gate: Gate,
    lookup: ResultLookup,
) -> Reply:
    exam = command.exam or EXAMS[0]
    if not command.valid_number:
        example = "36611030002" if exam in INDEX_EXAMS else "<assessment no>"
        return Reply(text("results_usage", language, exam=exam, example=example))
    assert command.number is not None
    if not gate.results_allowed(phone):
        return Reply(text("results_limited", language))
    result = lookup(exam, command.number, command.year)
    if result is None:
        year = f" {command.year}" if command.year else ""
        return Reply(text("results_not_found", language, exam=exam, year=year, number=command.number))
    if not result.series.released:
        return Reply(text("results_embargoed", language, exam=exam, year=result.series.year))
    if not _may_see(session, phone, result, command.names):
        return Reply(text("results_need_name", language, exam=exam, number=command.number))
    record_disclosure(
        session, phone=phone, learner_id=result.learner_id, action="results_replied", channel="sms",
        reference=str(message_id), detail=f"{exam} {result.series.year}",
    )
    return Reply(format_results(result, language))


def _may_see(session: Session, phone: str, result: Result, names: tuple[str, ...]) -> bool:
    if names and names_match(names, result, lambda: session.get(Learner, result.learner_id)):
        return True
    if result.learner_id is None:
        return False
    guardian = find_guardian(session, phone)
    return guardian is not None and guardian.is_active and is_linked(session, phone, result.learner_id)


def names_match(given: tuple[str, ...], result: Result, learner_of: Callable[[], Learner | None]) -> bool:
    """Every name given is one of the candidate's (case, spaces and accents ignored); at most
    MAX_NAMES of them, each of two letters or more, so initials or a list of guesses do not pass.
    The names of the registry's learner (``learner_of``, read only when needed) count too."""
    if not given or len(given) > MAX_NAMES:
        return False
    keys = [name_key(name) for name in given]
    if any(len(key) < 2 for key in keys):
        return False
    known = name_keys(result.candidate_name)
    if all(key in known for key in keys):
        return True
    learner = learner_of() if result.learner_id is not None else None
    if learner is None:
        return False
    known |= name_keys(" ".join(filter(None, (learner.first_name, learner.middle_name, learner.last_name))))
    return all(key in known for key in keys)


def subject_grades(subjects: str) -> list[tuple[str, str]]:
    """``ENG:B+;KIS:A-`` as ``[("ENG", "B+"), ("KIS", "A-")]``, grades untouched."""
    pairs = []
    for item in subjects.split(";"):
        code, sep, grade = item.partition(":")
        if sep and code.strip() and grade.strip():
            pairs.append((code.strip(), grade.strip()))
    return pairs


def format_results(result: Result, language: str) -> str:
    """The results reply: mean grade, points and every subject grade, GSM-7, within two segments.

    Compact spacing is used when the roomy layout is too long; only an import with an implausible
    number of subjects would be cut, and then the cut is marked with ``...``.
    """
    points = "" if result.points is None else text("results_points", language, points=result.points)
    pairs = subject_grades(result.subjects or "")

    def compose(separator: str, items: list[tuple[str, str]], tail: str = "") -> str:
        subjects = separator.join(f"{code}:{grade}" for code, grade in items) + tail
        return gsm.to_gsm7(text(
            "results", language, exam=result.series.exam, year=result.series.year,
            number=result.index_number, mean=result.mean_grade, points=points, subjects=subjects,
        ).rstrip())

    for separator in (", ", " "):
        reply = compose(separator, pairs)
        if gsm.fits(reply, MAX_SEGMENTS):
            return reply
    kept = list(pairs)
    while kept:
        kept.pop()
        reply = compose(" ", kept, " ...")
        if gsm.fits(reply, MAX_SEGMENTS):
            return reply
    return compose(" ", [], "...")


# --- UPI -----------------------------------------------------------------------------------------


def _upi_reply(session: Session, phone: str, message_id: int, language: str, ussd_code: str) -> Reply:
    guardian = find_guardian(session, phone)
    if guardian is None or not guardian.is_active:
        return Reply(text("upi_inactive", language, ussd=ussd_code))
    learners = learners_for_phone(session, phone)
    if not learners:
        return Reply(text("upi_none", language, ussd=ussd_code))
    shown = learners[:MAX_UPIS]
    items = "; ".join(f"{gsm.to_gsm7(learner.masked_name)} {learner.upi}" for learner in shown)
    more = len(learners) - len(shown)
    if more:
        items += text("upi_more", language, count=more, ussd=ussd_code)
    for learner in shown:
        record_disclosure(session, phone=phone, learner_id=learner.id, action="upi_sent", channel="sms",
                          reference=str(message_id))
    return Reply(text("upi_list", language, items=items), MessageKind.UPI)


# --- STOP / START --------------------------------------------------------------------------------


def set_opted_out(session: Session, phone: str, opted_out: bool) -> None:
    """STOP/START for a phone, linked or not: one upsert, safe when two arrive at once."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    statement = insert(PhoneSetting).values(phone=phone, opted_out=opted_out, language="en",
                                            created_at=now, updated_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[PhoneSetting.phone], set_={"opted_out": opted_out, "updated_at": now}
    )
    session.execute(statement)
