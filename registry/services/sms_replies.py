"""Answers to inbound SMS commands, with the results disclosure policy.

Results go only to a sender who gives one of the candidate's names (every name given must be one of
them) or whose phone is verified for that learner (an activated account whose link was proven on
USSD: ``registry.services.learners.VERIFIED``; a link a school recorded is not enough); before
``elimu results release`` the answer is that they are not yet out. A sender who may not see a result
gets the same answer whether or not the number exists ("not yet released" only for a series, whatever
the number), so no reply tells that an index number is real. A results reply carries the mean grade
and every subject grade exactly as imported, in GSM-7, within two SMS segments. ``UPI`` lists only the
learners the phone is verified for. Every disclosure is an audit event in the same transaction as the
reply, and so is every results request refused after its lookup (``MISS_ACTION``, ``REFUSED_ACTION``):
a phone's misses, counted from the trail, stop its name checks for a day (``MISSES_PER_DAY``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import and_, func, or_, select
from sqlalchemy import text as sql
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .. import gsm
from ..arrays import among, binary_array
from ..exams import STATUS_MARKS
from ..models import AuditEvent, ExamResult, ExamSeries, Learner, MessageKind, PhoneSetting, utcnow
from ..outbox import cancel_announcements
from ..signals import limit_event
from .audit import RESULTS_MISS_ACTION, RESULTS_REFUSED_ACTION, record_disclosure, record_failed_check
from .learners import find_guardian, is_verified, verified_learners_for_phone, verified_phones
from .results import find_result
from .sms_commands import (
    EXAMS,
    INDEX_DIGITS,
    INDEX_EXAMS,
    MAX_NAMES,
    MIN_NAME_LETTERS,
    Command,
    CommandKind,
    dash_pieces,
    name_key,
    name_keys,
)
from .sms_texts import text

MAX_SEGMENTS = 2
MAX_UPIS = 6
# A results request whose names matched no candidate at its number (a wrong name, or a number nobody
# holds: counted alike, so the limit tells no more than the reply whether a number is real), whatever
# the refusal says; MISSES_PER_DAY of them in MISS_WINDOW and the phone's names are not checked again
# until the oldest is a day old (as activation misses, ``accounts.MISSES_PER_DAY``). A refusal made
# without a name check (no name given, or over that limit) is audited as REFUSED_ACTION, not counted.
MISS_ACTION = RESULTS_MISS_ACTION  # "results_miss"
REFUSED_ACTION = RESULTS_REFUSED_ACTION  # "results_refused"
MISSES_PER_DAY = 10
MISS_WINDOW = timedelta(days=1)
# PostgreSQL: a batch that checks names holds a lock per sender (in one order: no deadlock between
# two batches) to its end, taken before it reads their misses, so a batch answering a phone that
# another batch is answering waits for that one's misses to commit and counts them (two drains at
# once would each count from the trail without the other's). SQLite: the claim's write lock already
# makes batches take turns.
_MISS_LOCKS = sql(
    "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended('results:' || v, 0) AS k "
    "FROM unnest(CAST(:phones AS text[])) AS v ORDER BY 1) AS s"
)


# The misses of a batch's senders, phone by phone through ``ix_audit_events_phone`` (a lateral count
# per phone, which PostgreSQL cannot turn into a join): written as one IN, statistics taken while the
# trail was small had it scan the whole trail for each batch (1.8 ms a batch with 12,000 rows, growing).
_MISSES = sql(
    "SELECT p.phone, m.n FROM unnest(CAST(:phones AS text[])) AS p (phone) CROSS JOIN LATERAL "
    "(SELECT count(*) AS n FROM audit_events AS a WHERE a.phone = p.phone AND a.at >= :since "
    "AND a.action = :action) AS m WHERE m.n > 0"
)


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


class ResultLookup:
    """What a results reply reads of the registry, one query per question: the result that answers
    (``registry.services.results.find_result``), the years of an exam not yet released, whether a
    phone is verified for a learner, and a phone's misses (:data:`MISS_ACTION`) of the last day.
    :func:`prefetch_results` answers a whole batch's from a few queries."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._misses: dict[str, int] = {}

    def __call__(self, exam: str, number: str, year: int | None) -> Result | None:
        """The result that answers: that year's; else the latest released year's; else the latest year's."""
        return find_result(self.session, exam, number, year)

    def pending_years(self, exam: str) -> frozenset[int]:
        """The years of ``exam`` imported but not yet released (the same for every number)."""
        return frozenset(self.session.scalars(
            select(ExamSeries.year).where(ExamSeries.exam == exam, ExamSeries.released_at.is_(None))
        ))

    def verified(self, phone: str, learner_id: int) -> bool:
        """Whether ``phone`` is verified for the learner (may leave the name out)."""
        return is_verified(self.session, phone, learner_id)

    def misses(self, phone: str) -> int:
        """``phone``'s results misses of the last MISS_WINDOW: its audit rows, read once, and those
        counted through this lookup since (:meth:`missed`: a batch writes its rows at its end)."""
        if phone not in self._misses:
            self._misses.update(misses_since(self.session, self._to_read(phone), utcnow() - MISS_WINDOW))
        return self._misses[phone]

    def missed(self, phone: str) -> None:
        """Count one more miss of ``phone`` (its audit row recorded by the caller)."""
        self._misses[phone] = self.misses(phone) + 1

    def _to_read(self, phone: str) -> set[str]:
        return {phone}


class PrefetchedResults(ResultLookup):
    """A batch's lookups: its results read by one query up front; the series not yet released, the
    phones verified for the batch's learners and the senders' misses, by one more query each, made when
    a reply first needs it (a batch whose senders all give a right name makes only the last one)."""

    def __init__(self, session: Session, found: dict[tuple[str, str], list[FoundResult]],
                 senders: Iterable[str] = ()) -> None:
        super().__init__(session)
        self._found = found
        self._senders = set(senders)  # whose misses one query reads, when a reply first needs them
        self._learner_ids = {r.learner_id for rs in found.values() for r in rs if r.learner_id is not None}
        self._pending: dict[str, frozenset[int]] | None = None
        self._verified: set[tuple[int, str]] | None = None

    def __call__(self, exam: str, number: str, year: int | None) -> FoundResult | None:
        candidates = self._found.get((exam, number), [])
        if year is not None:
            return next((r for r in candidates if r.series.year == year), None)
        released = [r for r in candidates if r.series.released]
        return (released or candidates or [None])[0]

    def pending_years(self, exam: str) -> frozenset[int]:
        if self._pending is None:
            pending: dict[str, set[int]] = {}
            for name, year in self.session.execute(
                select(ExamSeries.exam, ExamSeries.year).where(ExamSeries.released_at.is_(None))
            ):
                pending.setdefault(name, set()).add(year)
            self._pending = {name: frozenset(years) for name, years in pending.items()}
        return self._pending.get(exam, frozenset())

    def verified(self, phone: str, learner_id: int) -> bool:
        if learner_id not in self._learner_ids:  # not one of this batch's results: asked on its own
            return super().verified(phone, learner_id)
        if self._verified is None:
            self._verified = verified_phones(self.session, self._learner_ids)
        return (learner_id, phone) in self._verified

    def _to_read(self, phone: str) -> set[str]:
        if phone not in self._senders:  # not one of this batch's senders: asked on its own
            return {phone}
        senders, self._senders = self._senders, set()
        return senders


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
    """``charged``: the reply delivers what was asked for (a candidate's results), so it goes back
    with the inbound text's premium ``linkId`` and the sender pays; every other reply (help, STOP
    and START, not found, not yet released, slow down) goes as plain SMS, free to the sender."""

    text: str
    kind: MessageKind = MessageKind.REPLY
    charged: bool = False


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
    ``lookup`` answers results queries (default: a ``ResultLookup``, queries of its own for each; a
    batch passes :func:`prefetch_results`)."""
    language = reply_language(command, stored_language)
    if command.kind is CommandKind.HELP:
        return Reply(text("help", language, ussd=ussd_code))
    if command.kind in (CommandKind.STOP, CommandKind.START):
        set_opted_out(session, phone, command.kind is CommandKind.STOP)
        return Reply(text("stopped" if command.kind is CommandKind.STOP else "started", language))
    if command.kind is CommandKind.UPI:
        return _upi_reply(session, phone, message_id, language, ussd_code)
    if command.kind is CommandKind.RESULTS:
        return _results_reply(session, phone, message_id, command, language, gate, lookup or ResultLookup(session),
                              ussd_code)
    if gate.first_unknown_reply(phone):
        if command.number:  # "36611030002 Wanjiku": results asked for without the exam
            return Reply(text("results_need_exam", language, number=command.number))
        return Reply(text("unknown", language, ussd=ussd_code))
    return None


# --- results -------------------------------------------------------------------------------------


def prefetch_results(session: Session, commands: Iterable[Command], senders: Iterable[str] = ()) -> PrefetchedResults:
    """One query for the results of every well-formed results command of a batch; the lookup it
    returns picks among them exactly as ``find_result`` does (that year; else the latest released
    year; else the latest year), and reads the rest a reply needs once for the whole batch (the
    misses of the batch's ``senders`` too).

    On PostgreSQL the series read are share-locked to the end of the batch: a release or withdraw
    (``FOR UPDATE`` of the series) waits for a batch that read the series before it, so no grades
    go out composed before a withdraw committed, and the withdraw's count of answers sees them.
    Before that, when a name is to be checked, the ``senders``' miss locks are taken (``_MISS_LOCKS``)."""
    numbers: dict[str, set[str]] = {}  # exam -> index numbers: one array of numbers per exam
    names_checked = False
    for c in commands:
        if c.kind is CommandKind.RESULTS and c.valid_number:
            numbers.setdefault(c.exam, set()).add(c.number)  # type: ignore[arg-type]
            names_checked = names_checked or bool(c.names)
    senders = set(senders)
    if names_checked and senders and session.get_bind().dialect.name == "postgresql":
        session.execute(_MISS_LOCKS, {"phones": binary_array(sorted(senders))})  # the batch's first lock it may wait for
    found: dict[tuple[str, str], list[FoundResult]] = {}
    if numbers:
        rows = session.execute(
            select(ExamResult.learner_id, ExamResult.index_number, ExamResult.candidate_name, ExamResult.mean_grade,
                   ExamResult.points, ExamResult.subjects, ExamSeries.exam, ExamSeries.year, ExamSeries.released_at)
            .join(ExamSeries, ExamSeries.id == ExamResult.series_id)
            .where(or_(*(and_(ExamSeries.exam == exam, among(session, ExamResult.index_number, sorted(wanted)))
                         for exam, wanted in sorted(numbers.items()))))
            .order_by(ExamSeries.year.desc())
            .with_for_update(read=True, of=ExamSeries)
        )
        for learner_id, number, name, mean, points, subjects, exam, year, released_at in rows:
            result = FoundResult(learner_id, number, name, mean, points, subjects or "",
                                 Series(exam, year, released_at is not None))
            found.setdefault((exam, number), []).append(result)
    return PrefetchedResults(session, found, senders)


def misses_since(session: Session, phones: Iterable[str], since: datetime) -> dict[str, int]:
    """Each phone's results misses (:data:`MISS_ACTION` rows) since ``since``, 0 for none: one query
    for a batch's senders, served by the trail's index of phone and time."""
    counts = dict.fromkeys(phones, 0)
    if counts and session.get_bind().dialect.name == "postgresql":
        counts.update(session.execute(_MISSES, {"phones": binary_array(sorted(counts)), "since": since,
                                                "action": MISS_ACTION}).all())
    elif counts:
        counts.update(session.execute(
            select(AuditEvent.phone, func.count())
            .where(among(session, AuditEvent.phone, sorted(counts)), AuditEvent.at >= since,
                   AuditEvent.action == MISS_ACTION)
            .group_by(AuditEvent.phone)
        ).all())
    return counts


def _results_reply(
    session: Session, phone: str, message_id: int, command: Command, language: str, gate: Gate,
    lookup: ResultLookup, ussd_code: str,
) -> Reply:
    exam = command.exam or EXAMS[0]
    if not command.valid_number:  # malformed: answered every time, counted against no limit
        if command.index_digits is not None:  # told from the length typed alone: discloses nothing
            return Reply(text("results_index_length", language, exam=exam, digits=INDEX_DIGITS,
                              count=command.index_digits))
        if exam in INDEX_EXAMS:
            return Reply(text("results_usage", language, exam=exam, example="36611030002"))
        return Reply(text("results_usage_assessment", language, exam=exam))
    assert command.number is not None
    if not gate.results_allowed(phone):
        return Reply(text("results_limited", language))
    if command.year is not None and command.year in lookup.pending_years(exam):
        return Reply(text("results_embargoed", language, exam=exam, year=command.year))
    result = lookup(exam, command.number, command.year)
    limited = bool(command.names) and lookup.misses(phone) >= MISSES_PER_DAY  # its names are not checked
    if result is None or not _may_see(session, lookup, phone, result, () if limited else command.names):
        checked = bool(command.names) and not limited
        year = result.series.year if result is not None else command.year
        record_failed_check(session, phone=phone, action=MISS_ACTION if checked else REFUSED_ACTION, channel="sms",
                            reference=str(message_id), detail=f"{exam} {year or '-'} {command.number}")
        if limited:
            limit_event.send("results_misses_per_phone")  # elimu_rate_limited_total{limit}
            return Reply(text("results_misses_limited", language, ussd=ussd_code))
        if checked:
            lookup.missed(phone)
        return _refusal(lookup, command, exam, language, ussd_code)
    if not result.series.released:  # only to a sender who may see it: a right name or a verified phone
        return Reply(text("results_embargoed", language, exam=exam, year=result.series.year))
    record_disclosure(
        session, phone=phone, learner_id=result.learner_id, action="results_replied", channel="sms",
        reference=str(message_id), detail=f"{exam} {result.series.year} {result.index_number}",  # whose, linked or not
    )
    return Reply(format_results(result, language), charged=True)


def _refusal(lookup: ResultLookup, command: Command, exam: str, language: str, ussd_code: str) -> Reply:
    """The answer when no result may be shown, the same whether the number is unknown or its names
    did not match: "not yet released" while a series of the exam is (a year asked was checked before),
    else a request for a name (none given, with how a guardian verifies), for a full one (only names
    shorter than MIN_NAME_LETTERS given) or "none with that name" (with no year asked, also how to ask
    for an earlier one: a KCSE index is reused by next year's candidate)."""
    pending = lookup.pending_years(exam) if command.year is None else frozenset()
    if pending:
        return Reply(text("results_embargoed", language, exam=exam, year=max(pending)))
    if not command.names:
        return Reply(text("results_need_name", language, exam=exam, number=command.number, ussd=ussd_code))
    if short_names_only(command.names):
        return Reply(text("results_name_short", language, exam=exam, number=command.number,
                          letters=MIN_NAME_LETTERS))
    if command.year is None:  # the latest year's candidate: the index may be another's in an earlier year
        return Reply(text("results_no_match_latest", language, exam=exam, number=command.number))
    return Reply(text("results_no_match", language, exam=exam, year=f" {command.year}", number=command.number))


def _may_see(session: Session, lookup: ResultLookup, phone: str, result: Result, names: tuple[str, ...]) -> bool:
    """One of the candidate's names was given, or ``phone`` is verified for the learner."""
    if names and names_match(names, result, lambda: session.get(Learner, result.learner_id)):
        return True
    return result.learner_id is not None and lookup.verified(phone, result.learner_id)


def names_match(given: tuple[str, ...], result: Result, learner_of: Callable[[], Learner | None]) -> bool:
    """Every name given is one of the candidate's (case, spaces, punctuation and accents ignored; a
    name given with a dash, ``Kamau-Wa``, also as its parts), at most MAX_NAMES of them, and at least
    one a full name of MIN_NAME_LETTERS letters or more: a shorter piece (``Wa`` of ``Wa-Kamau``) or an
    initial counts only beside one, so two letters alone are no name to guess with, unless what is
    given is the candidate's whole name (``Li Na``). An initial (``J. Wanjiku``) must be the first
    letter of one of the candidate's names. The names of the registry's learner (``learner_of``, read
    only when needed) count too."""
    if not given or len(given) > MAX_NAMES:
        return False
    words = [(name_key(name), dash_pieces(name)) for name in given]
    if any(not key for key, _ in words):
        return False

    def passes(known: set[str], whole_names: list[set[str]]) -> bool:
        keys = [k for key, pieces in words for k in ([key] if key in known or len(pieces) < 2 else pieces)]
        full = [key for key in keys if len(key) >= MIN_NAME_LETTERS]
        if not all(key in known for key in full):
            return False
        firsts = {key[0] for key in known}
        if not all(key in known or (len(key) == 1 and key in firsts) for key in keys if len(key) < MIN_NAME_LETTERS):
            return False
        return bool(full) or any(whole <= set(keys) for whole in whole_names)

    def whole(full_name: str) -> set[str]:
        return {key for word in full_name.split() if (key := name_key(word))}

    known, wholes = name_keys(result.candidate_name), [whole(result.candidate_name)]
    if passes(known, wholes):
        return True
    learner = learner_of() if result.learner_id is not None else None
    if learner is None:
        return False
    learner_name = " ".join(filter(None, (learner.first_name, learner.middle_name, learner.last_name)))
    return passes(known | name_keys(learner_name), [*wholes, whole(learner_name)])


def short_names_only(given: tuple[str, ...]) -> bool:
    """Whether every name given is shorter than MIN_NAME_LETTERS (``Wa``, ``J. W.``): told from the text
    alone, so the reply saying so tells nothing of the candidate."""
    return bool(given) and all(len(name_key(name)) < MIN_NAME_LETTERS for name in given)


def subject_grades(subjects: str) -> list[tuple[str, str]]:
    """``ENG:B+;KIS:A-`` as ``[("ENG", "B+"), ("KIS", "A-")]``, grades untouched."""
    pairs = []
    for item in subjects.split(";"):
        code, sep, grade = item.partition(":")
        code, grade = code.strip(), grade.strip()  # each stripped once
        if sep and code and grade:
            pairs.append((code, grade))
    return pairs


MARKS_EXAMS = frozenset({"KCPE"})  # totals in marks (out of 500), not points
LEVEL_EXAMS = frozenset({"KPSEA", "KJSEA"})  # CBC: performance levels (EE, ME, AE, BE), not grades


def format_results(result: Result, language: str) -> str:
    """The results reply: mean grade (KPSEA, KJSEA: mean level), points and every subject grade,
    GSM-7, within two segments.

    Compact spacing is used when the roomy layout is too long; only an import with an implausible
    number of subjects would be cut, and then the cut is marked with ``...``.
    """
    scale = "results_marks" if result.series.exam in MARKS_EXAMS else "results_points"
    points = "" if result.points is None else text(scale, language, points=result.points)
    if result.mean_grade in STATUS_MARKS:  # "Y" alone tells a parent nothing
        points = text(f"results_mark_{result.mean_grade}", language) + points
    pairs = subject_grades(result.subjects or "")

    def compose(separator: str, items: list[tuple[str, str]], tail: str = "") -> str:
        subjects = separator.join(f"{code}:{grade}" for code, grade in items) + tail
        return gsm.to_gsm7(text(
            "results_levels" if result.series.exam in LEVEL_EXAMS else "results", language, exam=result.series.exam, year=result.series.year,
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
    learners = verified_learners_for_phone(session, phone)
    if not learners:  # linked but verified for none of them: how to verify, nothing disclosed
        return Reply(text("upi_unverified" if guardian.links else "upi_none", language, ussd=ussd_code))
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
    """STOP/START for a phone, linked or not: one upsert, safe when two arrive at once. STOP also
    ends the phone's announcements still queued (CONTRACT: no more announcements), in the same
    transaction."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    statement = insert(PhoneSetting).values(phone=phone, opted_out=opted_out, language="en",
                                            created_at=now, updated_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[PhoneSetting.phone], set_={"opted_out": opted_out, "updated_at": now}
    )
    session.execute(statement)
    if opted_out:
        cancel_announcements(session, phone)
