"""USSD accounts: activation, one-time codes, PINs, and what an activated phone may see.

Every function takes an open SQLAlchemy session (the caller commits) and ``now`` (an aware UTC
datetime), so tests control time. Rules:

- a phone sees a learner only through a ``GuardianLink`` it has verified (identity + date of birth + code);
- codes: 6 digits, 5 minutes, 3 tries, single use, at least 60 s apart, at most 5 an hour and 10 a day
  per phone, stored only as keyed hashes (``secrets.OtpHasher``); a request within the minute whose
  code is still outstanding and good is told so (``STILL_GOOD``), from any session, so a parent who
  dials again within the minute enters the code in the SMS;
- PINs: 4 digits, not trivial, argon2id; 3 wrong tries lock PIN use for 30 minutes, and each further
  3 in a row (no right PIN between) for twice as long as the lock before, up to a day;
- PINs chosen (activation, change, reset): at most 12 judged per phone in 24 h, however many dials
  (each is a ``pin_chosen`` row in the audit trail; one past them is not judged, a ``pin_choice_limit`` row),
  and past them no activation or reset code is sent, since the PIN it leads to could not be chosen;
- details that do not match (identifier, date of birth): 3 end a session, 10 in 24 h stop activation
  from the phone until they are a day old (each is an ``activation_miss`` row in the audit trail);
- every disclosure (UPI sent, status shown) writes an ``AuditEvent``;
- learner data reaches a USSD session (the learner list, a status, a UPI code and the UPI it leads
  to) only after the right PIN in that very session, recorded here (``PinSession``) and good for
  ``PIN_SESSION_VALID``: the menus' own ``pin_ok`` flag is not taken on trust. A PIN change and a
  learner added to an active account ask for the same record; a new PIN (changed or reset) ends it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Select,
    bindparam,
    delete,
    exists,
    false,
    func,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, joinedload

from menus.layout import short_person
from menus.services import (
    Account,
    Activation,
    ActivationResult,
    Enrolment,
    LearnerChoice,
    LearnerStatus,
    OtpCheck,
    OtpResult,
    PinCheck,
    PinNeeded,
    PinResult,
    Purpose,
    SendResult,
)
from menus.texts import DEFAULT_LANGUAGE, LANGUAGES, text

from ..models import (
    AuditEvent,
    ExamResult,
    ExamSeries,
    Guardian,
    GuardianLink,
    Learner,
    MessageKind,
    OneTimeCode,
    PhoneSetting,
    Transfer,
    TransferState,
)
from ..models.accounts import PinSession
from ..outbox import queue_sms
from ..signals import limit_event, otp_event
from .audit import record_disclosure, record_failed_check
from .secrets import OtpHasher, PinHasher, generate_otp, pin_is_trivial

if TYPE_CHECKING:
    from ..db import Database

OTP_VALID = timedelta(minutes=5)
OTP_TRIES = 3
OTP_GAP = timedelta(seconds=60)
OTP_PER_HOUR = 5
OTP_PER_DAY = 10
PIN_TRIES = 3
PIN_LOCK = timedelta(minutes=30)
PIN_LOCK_MAX = timedelta(days=1)
PROOF_WINDOW = timedelta(minutes=10)  # a used code authorises its follow-up step this long
# A right PIN opens learner data to its USSD session this long: the telcos end a session after
# 180 s and the gateway forgets one idle for 200 s, so 5 minutes outlasts any live session while a
# session id seen again later (a provider reusing ids, a replayed callback) finds it expired.
PIN_SESSION_VALID = timedelta(minutes=5)
PIN_SESSION_KEY = 100  # characters of PinSession.session_id
MISSES_PER_DAY = 10  # details that did not match, per phone in 24 h: then no more tries that day
MISS_ACTION = "activation_miss"
LISTED_ACTION = "learners_listed"  # the USSD list of a guardian's learners (masked name, grade)
RESET_ACTION = "pin_reset"  # a forgotten PIN replaced: it spends the reset code used before it
CHANGE_ACTION = "pin_changed"  # a PIN replaced after the current one, in the same session
# A refusal tells whether a PIN is a birthday of the phone's learners, so the PINs judged are counted
# per phone over the last 24 h (rolling, as the activation misses): two sessions' worth
# (``menus.flows.common.MAX_CHOSEN`` each), room for a parent who mistypes, none for trying dates.
PIN_CHOICES_PER_DAY = 12
CHOSEN_ACTION = "pin_chosen"  # a PIN judged on a choose-PIN screen, refused or taken
CHOICE_LIMIT_ACTION = "pin_choice_limit"  # a PIN not judged: the phone's day of choices was used
CHANNEL = "ussd"
SMS_NAME_LIMIT = 24


@dataclass(frozen=True)
class Keys:
    """The hashers built from the service secret."""

    otp: OtpHasher
    pin: PinHasher

    @classmethod
    def from_secret(cls, secret_key: str) -> Keys:
        return cls(OtpHasher(secret_key), PinHasher(secret_key))


def _aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every stored time is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _minutes_left(until: datetime | None, now: datetime) -> int:
    until = _aware(until)
    if until is None or until <= now:
        return 0
    return max(1, -(-int((until - now).total_seconds()) // 60))


# --- language -----------------------------------------------------------------------------------


_SETTINGS = PhoneSetting.__table__
_GUARDIANS = Guardian.__table__
_LINKS = GuardianLink.__table__
# Core statements (built once, compiled once): the USSD hops that only read run one of these each.
_LANGUAGE = select(_SETTINGS.c.language).where(_SETTINGS.c.phone == bindparam("phone"))


def language(session: Session | Connection, phone: str) -> str | None:
    return session.execute(_LANGUAGE, {"phone": phone}).scalar()


def set_language(session: Session, phone: str, lang: str) -> None:
    """One upsert: a phone's first choice made while its settings row is being inserted elsewhere (a
    STOP, its other session) waits for that row and sets the language on it."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}")
    insert = pg_insert if _postgresql(session) else sqlite_insert
    now = datetime.now(UTC)
    session.execute(insert(PhoneSetting).values(phone=phone, language=lang, opted_out=False, created_at=now,
                                                updated_at=now)
                    .on_conflict_do_update(index_elements=[PhoneSetting.phone],
                                           set_={"language": lang, "updated_at": now}))


def _sms_text(session: Session, phone: str, key: str, **values: object) -> str:
    return text(language(session, phone) or DEFAULT_LANGUAGE, key, **values)


# --- account standing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """A phone's language and standing as one read found them (what a USSD session starts from)."""

    language: str | None
    linked: bool
    active: bool
    locked_until: datetime | None = None

    def account(self, now: datetime) -> Account:
        return Account(linked=self.linked, active=self.active, locked_minutes=_minutes_left(self.locked_until, now))


# The language and the standing in one statement: the phone's settings row and guardian row may
# each be missing, so both hang off a one-row FROM.
_ONE = select(literal(1).label("one")).subquery("one")
_CALLER_COLUMNS = (
    _LANGUAGE.scalar_subquery(),
    _GUARDIANS.c.pin_hash.is_not(None) & _GUARDIANS.c.activated_at.is_not(None),
    _GUARDIANS.c.pin_locked_until,
    exists().where(_LINKS.c.guardian_id == _GUARDIANS.c.id),
)
_CALLER_FROM = _ONE.outerjoin(_GUARDIANS, _GUARDIANS.c.phone == bindparam("phone"))
_CALLER = select(*_CALLER_COLUMNS).select_from(_CALLER_FROM).limit(1)
# The phone's code-sending lock, held to the end of the transaction. Two requests for one phone
# at once (a callback sent twice, forged ones in a burst) would otherwise both pass the send
# limits, each blind to the other's code until it commits: the second now waits for the first,
# and its next statement (a fresh snapshot) sees the first one's code. PostgreSQL: an advisory
# lock per phone, taken in the caller read itself (no round trip of its own). SQLite: the
# database's write lock, taken by a write that changes nothing (its driver opens a transaction
# only at the first write, so reads before it hold nothing).
_SEND_LOCK = func.pg_advisory_xact_lock(func.hashtextextended(literal("otp:") + bindparam("phone"), 0))
_CALLER_SENDING = select(*_CALLER_COLUMNS, _SEND_LOCK).select_from(_CALLER_FROM).limit(1)
_SQLITE_WRITE_LOCK = update(OneTimeCode).where(false()).values(phone=OneTimeCode.phone)


def _postgresql(session: Session | Connection) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def caller(session: Session | Connection, phone: str, *, sending: bool = False) -> Caller:
    """``language`` and ``account`` of ``phone`` in one statement (one round trip instead of two);
    ``sending``: a code may be sent next, so the phone's sending lock is taken too (on PostgreSQL
    in the same statement)."""
    if not sending:
        return _caller_of(session.execute(_CALLER, {"phone": phone}).one())
    if _postgresql(session):
        return _caller_of(session.execute(_CALLER_SENDING, {"phone": phone}).one())
    who = _caller_of(session.execute(_CALLER, {"phone": phone}).one())
    if who.linked:  # only a linked phone can be sent an activation code: others take no write lock
        lock_sends(session, phone)
    return who


def lock_sends(session: Session | Connection, phone: str) -> None:
    """Hold ``phone``'s code-sending lock until the transaction ends: the send limits read after
    it count every code committed before (and ``judge_chosen_pin``'s count every PIN judged)."""
    if _postgresql(session):
        session.execute(select(_SEND_LOCK), {"phone": phone})
    else:
        session.execute(_SQLITE_WRITE_LOCK, execution_options={"synchronize_session": False})


def read_caller(db: Database, phone: str) -> Caller:
    """``caller`` as a statement of its own (``Database.fetch``): how a USSD session starts."""
    (row,) = db.fetch(_CALLER, {"phone": phone})
    return _caller_of(row)


def _caller_of(row: Sequence[Any]) -> Caller:
    lang, active, locked_until, linked = row[:4]
    return Caller(language=lang, linked=bool(linked), active=bool(active), locked_until=_aware(locked_until))


# --- one-time codes -----------------------------------------------------------------------------


def _codes_since(phone: str, since: datetime) -> Select:
    return select(OneTimeCode.created_at).where(OneTimeCode.phone == phone, OneTimeCode.created_at > since)


def send_allowance(session: Session, phone: str, now: datetime) -> SendResult:
    """Whether another code may go to ``phone`` now (gap, hourly and daily ceilings). The caller
    holds the phone's sending lock (``lock_sends``, or ``caller(..., sending=True)``)."""
    return _allowance(list(session.scalars(_codes_since(phone, now - timedelta(days=1)))), now)


def _allowance(sent: Sequence[datetime], now: datetime) -> SendResult:
    """``send_allowance`` from the times of the codes sent in the last day."""
    times = sorted((_aware(t) for t in sent), reverse=True)  # type: ignore[type-var]
    if times and now - times[0] < OTP_GAP:  # type: ignore[operator]
        return SendResult.TOO_SOON
    if len(times) >= OTP_PER_DAY or sum(1 for t in times if now - t < timedelta(hours=1)) >= OTP_PER_HOUR:  # type: ignore[operator]
        return SendResult.LIMIT
    return SendResult.SENT


def _allowance_and_misses(
    session: Session, phone: str, now: datetime, *, choosing: bool = False
) -> tuple[SendResult, int, int]:
    """``send_allowance``, the phone's activation misses in the last day and, when a PIN is to be
    chosen after the code (``choosing``), its PINs judged in the last day (else 0), in one statement."""
    since = now - timedelta(days=1)
    parts = [_codes_since(phone, since).add_columns(literal(0).label("kind"))]
    for kind, action in [(1, MISS_ACTION), (2, CHOSEN_ACTION)] if choosing else [(1, MISS_ACTION)]:
        parts.append(select(AuditEvent.at, literal(kind)).where(
            AuditEvent.phone == phone, AuditEvent.action == action, AuditEvent.at > since))
    rows = session.execute(union_all(*parts)).all()
    kinds = Counter(kind for _, kind in rows)
    return _allowance([at for at, kind in rows if kind == 0], now), kinds[1], kinds[2]


def issue_otp(
    session: Session, keys: Keys, phone: str, purpose: Purpose, now: datetime, learner_id: int | None = None
) -> SendResult:
    """Create a code and queue its SMS (redacted in the database, clear only in the job); within the
    minute of the last code, ``STILL_GOOD`` if the code outstanding is for this same ``purpose`` and
    ``learner_id`` (the caller has checked that this session may ask for it, as for a new code)."""
    lock_sends(session, phone)
    allowed = send_allowance(session, phone, now)
    if allowed is not SendResult.SENT:
        otp_event.send("limited")
        if (allowed is SendResult.TOO_SOON and learner_id is not None
                and _outstanding_for(session, phone, purpose, now) == learner_id):
            return SendResult.STILL_GOOD  # its screen again (a new session knows of no code sent)
        return allowed
    _send_code(session, keys, phone, purpose, now, learner_id, language(session, phone))
    return SendResult.SENT


def _outstanding_for(session: Session, phone: str, purpose: Purpose, now: datetime) -> int | None:
    """The learner of ``phone``'s newest code of ``purpose`` if ``check_otp`` would still try it (not
    used, not expired, tries left), else None: whose code the SMS holds, whichever session sent it."""
    row = session.execute(
        select(OneTimeCode.learner_id, OneTimeCode.used_at, OneTimeCode.expires_at, OneTimeCode.attempts)
        .where(OneTimeCode.phone == phone, OneTimeCode.purpose == purpose.value)
        .order_by(OneTimeCode.id.desc()).limit(1)
    ).first()
    if row is None or row.used_at is not None or _aware(row.expires_at) <= now or row.attempts >= OTP_TRIES:  # type: ignore[operator]
        return None
    return row.learner_id


def _send_code(
    session: Session, keys: Keys, phone: str, purpose: Purpose, now: datetime, learner_id: int | None,
    lang: str | None,
) -> None:
    """A new code and its SMS in ``lang``, the send limits already checked in this transaction."""
    code = generate_otp()
    session.add(OneTimeCode(phone=phone, purpose=purpose.value, learner_id=learner_id,
                            code_hash=keys.otp.hash(code), expires_at=now + OTP_VALID, attempts=0,
                            created_at=now, updated_at=now))
    lang = lang or DEFAULT_LANGUAGE
    queue_sms(session, phone, MessageKind.OTP, text(lang, "sms.otp", otp="******"),
              secret=text(lang, "sms.otp", otp=code))
    otp_event.send("sent")


def check_otp(
    session: Session, keys: Keys, phone: str, purpose: Purpose, code: str, now: datetime,
    learner_id: int | None = None,
) -> OtpCheck:
    """Check the newest code of ``purpose`` for ``phone``; a good one is used up."""
    result = _check_otp(session, keys, phone, purpose, code, now, learner_id)
    otp_event.send("verified" if result.result is OtpResult.OK else "failed")
    return result


def _check_otp(
    session: Session, keys: Keys, phone: str, purpose: Purpose, code: str, now: datetime,
    learner_id: int | None,
) -> OtpCheck:
    row = session.scalars(
        select(OneTimeCode)
        .where(OneTimeCode.phone == phone, OneTimeCode.purpose == purpose.value)
        .order_by(OneTimeCode.id.desc())
        .limit(1)
        .with_for_update()
    ).first()
    if row is None or row.used_at is not None or _aware(row.expires_at) <= now:  # type: ignore[operator]
        return OtpCheck(OtpResult.EXPIRED)
    if row.attempts >= OTP_TRIES:
        return OtpCheck(OtpResult.EXHAUSTED)
    if learner_id is not None and row.learner_id != learner_id:
        return OtpCheck(OtpResult.EXPIRED)
    if keys.otp.verify(row.code_hash, code):
        row.used_at = now
        return OtpCheck(OtpResult.OK)
    row.attempts += 1
    if row.attempts >= OTP_TRIES:
        return OtpCheck(OtpResult.EXHAUSTED)
    return OtpCheck(OtpResult.WRONG, tries_left=OTP_TRIES - row.attempts)


def require_pin_for_code(
    session: Session, phone: str, purpose: Purpose, session_id: str | None, now: datetime
) -> None:
    """Before a code of ``purpose`` is checked: ``PinNeeded`` (the code untouched, no try counted)
    when what it leads to needs the PIN in ``session_id``: a UPI code (the UPI by SMS) always, an
    activation code when the account is active (it adds a learner to it). A first activation's
    code and a reset code are proof enough themselves."""
    if purpose is Purpose.UPI or (purpose is Purpose.ACTIVATE and caller(session, phone).active):
        require_pin(session, phone, session_id, now)


def _proved(
    session: Session, phone: str, purpose: Purpose, now: datetime, learner_id: int | None = None,
    spent_by: str | None = None,
) -> bool:
    """Whether ``phone`` used a code of ``purpose`` (for ``learner_id``) within the proof window;
    ``spent_by``: and no audit row of that action for ``phone`` since (the step it authorised, done
    once, spends it)."""
    return _proof(session, phone, purpose, now, learner_id, spent_by) is not None


def _proof(
    session: Session, phone: str, purpose: Purpose, now: datetime, learner_id: int | None = None,
    spent_by: str | None = None,
) -> datetime | None:
    """When the newest code that ``_proved`` finds was used, or None when there is none."""
    query = select(func.max(OneTimeCode.used_at)).where(
        OneTimeCode.phone == phone, OneTimeCode.purpose == purpose.value,
        OneTimeCode.used_at.is_not(None), OneTimeCode.used_at > now - PROOF_WINDOW,
    )
    if learner_id is not None:
        query = query.where(OneTimeCode.learner_id == learner_id)
    if spent_by is not None:
        query = query.where(~exists().where(AuditEvent.phone == phone, AuditEvent.action == spent_by,
                                            AuditEvent.at >= OneTimeCode.used_at))
    return _aware(session.scalar(query))


# --- activation ---------------------------------------------------------------------------------


def _same(a: str | None, b: str) -> bool:
    return hmac.compare_digest((a or "").replace(" ", "").upper().encode(), b.encode())


def match_learner(
    session: Session, phone: str, identifier: str, born: date, *, verified: bool = False
) -> Learner | None:
    """The learner linked to ``phone`` (``verified``: and verified on it) whose birth certificate,
    assessment or index number is ``identifier`` and who was born on ``born``; every candidate is
    compared, no early exit.

    One statement: the learners linked to the phone with their results' index numbers joined."""
    candidates: dict[int, Learner] = {}
    index_numbers: dict[int, list[str]] = {}
    query = (
        select(Learner, ExamResult.index_number).join(GuardianLink, GuardianLink.learner_id == Learner.id)
        .join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .outerjoin(ExamResult, ExamResult.learner_id == Learner.id)
        .where(Guardian.phone == phone)
    )
    if verified:
        query = query.where(GuardianLink.verified_at.is_not(None))
    for learner, number in session.execute(query):
        candidates.setdefault(learner.id, learner)
        if number is not None:
            index_numbers.setdefault(learner.id, []).append(number)
    found = None
    for learner in candidates.values():
        numbers = [learner.birth_certificate_no, learner.assessment_no, *index_numbers.get(learner.id, [])]
        known = any([_same(n, identifier) for n in numbers if n])  # noqa: C419 - compare them all
        if known and learner.date_of_birth == born and found is None:
            found = learner
    return found


def start_activation(
    session: Session, keys: Keys, phone: str, identifier: str, born: date, now: datetime,
    purpose: Purpose = Purpose.ACTIVATE, session_id: str | None = None,
) -> Activation:
    """Identity + date of birth for a learner linked to this phone; a match gets a code by SMS.

    To an active account (adding a learner) only after the PIN in ``session_id``: else ``PinNeeded``
    before anything is read or counted, as ``require_pin_for_code`` asks it before the code.

    ``Purpose.PIN_RESET``: the same for a forgotten PIN, among the learners the phone is verified
    for (an active account only), with the same misses and limits.

    The send limits are checked first, so "wait" never reveals that the details matched; the one
    exception is ``STILL_GOOD``: within the minute of a code of ``purpose`` that is still good (not
    used, tries left), the details of its own learner (which this phone gave for that code) bring
    its screen back, in any session, while any other details wait as before: another learner's
    count no miss, and details matching none count one, as at any other time (the 'still good'
    answer must not be a free test of what belongs to the learner whose code is outstanding, beyond
    the misses limit). One read of the caller gives the standing and the SMS's language, and the
    limits are read once: the OTP hop of a results-day burst pays for every round trip in its transaction (``bench`` B3).

    Before all that, a code that leads to choosing a PIN (a first activation, a reset) is refused
    with ``PIN_LIMIT`` (a ``CHOICE_LIMIT_ACTION`` row) when the phone has had its PINs of the day
    judged (``judge_chosen_pin``): the PIN after it would not be judged, so no code is sent for
    the parent to spend in vain. It concerns the phone alone, and is said before any matching.
    """
    who = caller(session, phone, sending=True)  # and the phone's sending lock
    resetting = purpose is Purpose.PIN_RESET
    if not who.linked or (resetting and not who.active):
        return Activation(ActivationResult.NOT_LINKED)
    if who.active and not resetting:
        require_pin(session, phone, session_id, now)
    choosing = resetting or not who.active  # a PIN is chosen after this code
    allowed, misses, chosen = _allowance_and_misses(session, phone, now, choosing=choosing)
    if chosen >= PIN_CHOICES_PER_DAY:  # that PIN would not be judged: no code sent (or spent) for it
        session.add(AuditEvent(at=now, phone=phone, learner_id=None, action=CHOICE_LIMIT_ACTION, channel=CHANNEL,
                               detail=f"{purpose.value}: refused before the code"))
        return Activation(ActivationResult.PIN_LIMIT)
    if allowed is not SendResult.SENT:
        otp_event.send("limited")  # counted as ``issue_otp`` counts a refused code
        outstanding = _outstanding_for(session, phone, purpose, now) if allowed is SendResult.TOO_SOON else None
        if outstanding is not None and misses < MISSES_PER_DAY:
            learner = match_learner(session, phone, identifier, born, verified=resetting)
            if learner is not None and learner.id == outstanding:
                return Activation(ActivationResult.STILL_GOOD, learner.id)
            if learner is None:  # tried against the learners, so a miss as at any other time (still 'wait')
                record_failed_check(session, phone=phone, action=MISS_ACTION, channel=CHANNEL, at=now)
        return Activation(ActivationResult.TOO_SOON if allowed is SendResult.TOO_SOON else ActivationResult.LIMIT)
    if misses >= MISSES_PER_DAY:
        limit_event.send("activation_misses_per_phone")  # elimu_rate_limited_total{limit}
        return Activation(ActivationResult.MISS_LIMIT)  # before matching: it never tells a match
    learner = match_learner(session, phone, identifier, born, verified=resetting)
    if learner is None:
        record_failed_check(session, phone=phone, action=MISS_ACTION, channel=CHANNEL, at=now)
        return Activation(ActivationResult.MISS)
    _send_code(session, keys, phone, purpose, now, learner.id, who.language)
    return Activation(ActivationResult.MATCH, learner.id)


def _link(session: Session, phone: str, learner_id: int, *, verified: bool) -> GuardianLink | None:
    query = (
        select(GuardianLink).join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .where(Guardian.phone == phone, GuardianLink.learner_id == learner_id)
        .options(joinedload(GuardianLink.guardian), joinedload(GuardianLink.learner))
    )
    if verified:
        query = query.where(GuardianLink.verified_at.is_not(None))
    return session.scalars(query.limit(1)).first()


def activate(
    session: Session, keys: Keys, phone: str, learner_id: int, pin: str | None, session_id: str, now: datetime
) -> bool:
    """After a good activation code: verify the link, set the PIN if given, and SMS the UPI.

    An active account keeps its PIN (a learner added to it after the PIN, whatever ``pin`` says):
    an activation code proves a learner linked to the phone, not the PIN, which only the current
    PIN or a reset code (a verified learner's details) may replace. Adding a learner to an active
    account is only for the USSD session that entered the PIN (``require_pin``: else ``PinNeeded``,
    and nothing changes): a dropped session resumed in a new dial carries the menus' ``pin_ok``,
    not the PIN. The phone's guardian row is locked first: a second session choosing a PIN at the
    same time waits, then finds the account active, as a session after this one does (not writing
    its PIN over the one this one set, and adding its learner only after the PIN)."""
    session.execute(select(Guardian.id).where(Guardian.phone == phone).with_for_update())
    link = _link(session, phone, learner_id, verified=False)
    if link is None or not _proved(session, phone, Purpose.ACTIVATE, now, learner_id):
        return False
    guardian = link.guardian
    if guardian.is_active:  # adding a learner: only for the session that entered the PIN
        require_pin(session, phone, session_id, now)
    if pin is not None and not guardian.is_active:
        guardian.pin_hash = keys.pin.hash(pin)
        guardian.pin_failures = 0
        guardian.pin_locked_until = None
        guardian.activated_at = guardian.activated_at or now
    elif not guardian.is_active:
        return False
    link.verified_at = link.verified_at or now
    _send_upi(session, phone, link.learner, session_id, now)
    return True


# --- PINs ---------------------------------------------------------------------------------------


def check_pin(
    session: Session, keys: Keys, phone: str, pin: str, now: datetime, session_id: str | None = None
) -> PinCheck:
    """Check the PIN against its tries and locks; a right one is recorded for ``session_id``."""
    guardian = session.scalars(select(Guardian).where(Guardian.phone == phone).with_for_update()).first()
    if guardian is None or not guardian.is_active:
        return PinCheck(PinResult.INACTIVE)
    locked = _minutes_left(guardian.pin_locked_until, now)
    if locked:
        return PinCheck(PinResult.LOCKED, locked_minutes=locked)
    if keys.pin.verify(guardian.pin_hash, pin):
        guardian.pin_failures = 0
        if session_id:
            _record_pin(session, guardian.id, session_id, now)
        return PinCheck(PinResult.OK)
    guardian.pin_failures += 1  # kept across locks: only a right PIN or a new one clears it
    if guardian.pin_failures % PIN_TRIES:
        return PinCheck(PinResult.WRONG, tries_left=PIN_TRIES - guardian.pin_failures % PIN_TRIES)
    locks = guardian.pin_failures // PIN_TRIES
    lock = pin_lock(locks)
    guardian.pin_locked_until = now + lock
    minutes = int(lock.total_seconds() // 60)
    # the first lock's text names its 30 minutes; a longer one says how long it is
    return PinCheck(PinResult.LOCKED_NOW if locks == 1 else PinResult.LOCKED, locked_minutes=minutes)


def _record_pin(session: Session, guardian_id: int, session_id: str, now: datetime) -> None:
    """``session_id`` is where ``guardian_id`` entered its right PIN, at ``now`` (one statement: an
    insert that replaces the account's row; the guardian row is locked, so no two race)."""
    insert = pg_insert if _postgresql(session) else sqlite_insert
    values = {"session_id": _pin_key(session_id), "verified_at": now}
    session.execute(insert(PinSession).values(guardian_id=guardian_id, **values)
                    .on_conflict_do_update(index_elements=[PinSession.guardian_id], set_=values))


def _pin_key(session_id: str) -> str:
    """``session_id`` as ``PinSession`` keeps it (at most 100 characters): itself, or a longer one's
    digest, never its first 100 characters, which another session's id (providers send up to 200)
    may share."""
    if len(session_id) <= PIN_SESSION_KEY:
        return session_id
    return "sha256:" + hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


def require_pin(session: Session, phone: str, session_id: str | None, now: datetime) -> None:
    """Raise ``PinNeeded`` unless ``phone`` entered its right PIN in USSD session ``session_id``
    within ``PIN_SESSION_VALID`` (one read by the guardian's phone and primary key)."""
    if session_id:
        found = session.scalar(
            select(PinSession.guardian_id).join(Guardian, Guardian.id == PinSession.guardian_id)
            .where(Guardian.phone == phone, PinSession.session_id == _pin_key(session_id),
                   PinSession.verified_at > now - PIN_SESSION_VALID)
        )
        if found is not None:
            return
    raise PinNeeded


def pin_lock(locks: int) -> timedelta:
    """How long the ``locks``-th PIN lock in a row lasts: 30 minutes, doubling each time, a day at
    most. A fixed 30 minutes let whoever held the phone try 144 PINs a day, every PIN in ten weeks;
    this leaves 18 the first day and 3 a day after."""
    return min(PIN_LOCK * 2 ** min(locks - 1, 6), PIN_LOCK_MAX)


def pin_refused(session: Session, phone: str, pin: str, now: datetime) -> bool:
    """The PIN policy, with the birthdays (DDMM, MMDD) of this phone's learners as personal PINs:
    those it is verified for and the one whose activation code it used within the proof window.
    (A learner only linked is left out: refusing its birthday would tell it to whoever tries PINs.
    Every year is refused, so none tells a birth year; the menus end a session after a few PINs
    judged, refused or taken (``menus.flows.common.MAX_CHOSEN``), and ``judge_chosen_pin`` judges
    at most ``PIN_CHOICES_PER_DAY`` a day, whatever the dials, so birthdays are not tried at leisure.)"""
    proving = select(OneTimeCode.learner_id).where(
        OneTimeCode.phone == phone, OneTimeCode.purpose == Purpose.ACTIVATE.value,
        OneTimeCode.used_at.is_not(None), OneTimeCode.used_at > now - PROOF_WINDOW,
    )
    births = session.scalars(
        select(Learner.date_of_birth).join(GuardianLink, GuardianLink.learner_id == Learner.id)
        .join(Guardian, Guardian.id == GuardianLink.guardian_id).where(Guardian.phone == phone)
        .where(GuardianLink.verified_at.is_not(None) | Learner.id.in_(proving))
    )
    personal = {f(b) for b in births for f in (lambda d: d.strftime("%d%m"), lambda d: d.strftime("%m%d"))}
    return pin_is_trivial(pin, personal)


def judge_chosen_pin(session: Session, phone: str, pin: str, now: datetime) -> bool | None:
    """``pin_refused`` for a PIN chosen over USSD, counted across sessions and dials: each PIN judged
    is a ``CHOSEN_ACTION`` row; once ``PIN_CHOICES_PER_DAY`` were judged in the last 24 h, None: this
    one is not judged (nothing tells whether it is a birthday), and the refusal is a
    ``CHOICE_LIMIT_ACTION`` row. The phone's lock is taken first (``lock_sends``), so two sessions
    choosing at once are counted one after the other, not both under the limit."""
    lock_sends(session, phone)
    judged = session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.phone == phone, AuditEvent.action == CHOSEN_ACTION, AuditEvent.at > now - timedelta(days=1)))
    counted = CHOICE_LIMIT_ACTION if judged >= PIN_CHOICES_PER_DAY else CHOSEN_ACTION
    session.add(AuditEvent(at=now, phone=phone, learner_id=None, action=counted, channel=CHANNEL))
    return None if counted == CHOICE_LIMIT_ACTION else pin_refused(session, phone, pin, now)


def _active_guardian(session: Session, phone: str) -> Guardian | None:
    """The phone's active account, its row locked to the end of the transaction (a PIN being
    replaced in another session waits, then reads what that one wrote)."""
    guardian = session.scalars(select(Guardian).where(Guardian.phone == phone).with_for_update()).first()
    return guardian if guardian is not None and guardian.is_active else None


def _replace_pin(session: Session, keys: Keys, guardian: Guardian, pin: str) -> None:
    """Set ``pin``, unlock the account, and end every session's right-PIN record: the new PIN has
    been entered in none, so learner data waits for it."""
    guardian.pin_hash = keys.pin.hash(pin)
    guardian.pin_failures = 0
    guardian.pin_locked_until = None
    session.execute(delete(PinSession).where(PinSession.guardian_id == guardian.id))


def set_pin(session: Session, keys: Keys, phone: str, pin: str, session_id: str | None, now: datetime) -> bool:
    """Replace the PIN of an active account and unlock it, only for the USSD session ``session_id``
    that entered the current PIN (``require_pin``: else ``PinNeeded``, and nothing changes); the
    menus' ``pin_ok`` flag, which a resumed or forged state carries, is not taken on trust. Each
    change is in the audit trail (``CHANGE_ACTION``). False: no active account."""
    guardian = _active_guardian(session, phone)
    if guardian is None:
        return False
    require_pin(session, phone, session_id, now)
    _replace_pin(session, keys, guardian, pin)
    session.add(AuditEvent(at=now, phone=phone, learner_id=None, action=CHANGE_ACTION, channel=CHANNEL))
    return True


def reset_pin(session: Session, keys: Keys, phone: str, pin: str, now: datetime) -> bool:
    """A forgotten PIN's replacement: only after a reset code this phone used within the proof
    window, checked here rather than taken from the session's state (which a resumed session
    carries on from one dial to the next), and not yet spent: each reset is in the audit trail
    (``RESET_ACTION``), and a code used before it sets no other PIN (a second reset needs a new
    code). The guardian row is locked first, so a reset at the same time waits and finds the code spent.
    The row is dated no earlier than the code's use: a web process whose clock is behind the one that
    checked the code (another host) must not write a row that leaves the code unspent."""
    guardian = _active_guardian(session, phone)
    used = _proof(session, phone, Purpose.PIN_RESET, now, spent_by=RESET_ACTION) if guardian else None
    if guardian is None or used is None:
        return False
    _replace_pin(session, keys, guardian, pin)
    session.add(AuditEvent(at=max(now, used), phone=phone, learner_id=None, action=RESET_ACTION, channel=CHANNEL))
    return True


# --- disclosures --------------------------------------------------------------------------------


def my_learners(session: Session, phone: str, session_id: str | None, now: datetime) -> list[LearnerChoice]:
    """The learners ``phone`` verified, masked, for the session it entered its PIN in (``require_pin``;
    a phone with none is told so without it)."""
    rows = list(session.scalars(
        select(Learner).join(GuardianLink, GuardianLink.learner_id == Learner.id)
        .join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .where(Guardian.phone == phone, GuardianLink.verified_at.is_not(None))
        .order_by(Learner.first_name, Learner.id)
    ))
    if rows:
        require_pin(session, phone, session_id, now)
        # Two or more are listed (masked name and grade): a disclosure, audited like the status. One
        # learner is not listed: the menus go straight to what was asked, audited there.
        for learner in rows if len(rows) > 1 else ():
            _audit(session, phone, learner.id, LISTED_ACTION, session_id or "", now)
    return [LearnerChoice(learner.id, learner.masked_name, learner.grade) for learner in rows]


def _audit(session: Session, phone: str, learner_id: int, action: str, session_id: str, now: datetime) -> None:
    record_disclosure(session, phone=phone, learner_id=learner_id, action=action, channel=CHANNEL,
                      reference=session_id[:100], at=now)


def _send_upi(session: Session, phone: str, learner: Learner, session_id: str, now: datetime) -> None:
    # The masked name, shortened and in plain ASCII: one GSM-7 segment whatever the registry holds.
    name = short_person(learner.masked_name, SMS_NAME_LIMIT)
    body = _sms_text(session, phone, "sms.upi", name=name, upi=learner.upi)
    queue_sms(session, phone, MessageKind.UPI, body)
    _audit(session, phone, learner.id, "upi_sent", session_id, now)


def send_upi(session: Session, phone: str, learner_id: int, session_id: str, now: datetime) -> bool:
    """SMS a verified learner's UPI to this phone, after a UPI code used within the proof window, only
    to the session ``phone`` entered its PIN in (``require_pin``: else ``PinNeeded``, nothing sent)."""
    link = _link(session, phone, learner_id, verified=True)
    if link is None:
        return False
    require_pin(session, phone, session_id, now)
    if not _proved(session, phone, Purpose.UPI, now, learner_id):
        return False
    _send_upi(session, phone, link.learner, session_id, now)
    return True


def learner_status(session: Session, phone: str, learner_id: int, session_id: str, now: datetime) -> LearnerStatus | None:
    """A verified learner's school, enrolment and released results, audited as shown; only to the
    session ``phone`` entered its PIN in (``require_pin``)."""
    link = _link(session, phone, learner_id, verified=True)
    if link is None:
        return None
    require_pin(session, phone, session_id, now)
    learner = session.scalars(
        select(Learner).where(Learner.id == learner_id)
        .options(joinedload(Learner.institution), joinedload(Learner.transfers))
    ).unique().one()
    enrolment, other, admitted = Enrolment.ENROLLED, None, None
    transfer: Transfer | None = next(
        (t for t in reversed(learner.transfers) if t.state is not TransferState.CANCELLED), None
    )
    if transfer is not None:
        if transfer.state is TransferState.REQUESTED:
            enrolment = Enrolment.REQUESTED
            other = transfer.to_institution.name if transfer.to_institution else None
        elif transfer.state is TransferState.RELEASED:  # the school that asked to admit, if one did
            enrolment = Enrolment.RELEASED
            other = transfer.to_institution.name if transfer.to_institution else None
        elif transfer.state is TransferState.ADMITTED and transfer.admitted_at:
            enrolment, admitted = Enrolment.ADMITTED, _aware(transfer.admitted_at).date()  # type: ignore[union-attr]
    released = [
        f"{exam} {year}" for exam, year in session.execute(
            select(ExamSeries.exam, ExamSeries.year).join(ExamResult, ExamResult.series_id == ExamSeries.id)
            .where(ExamResult.learner_id == learner_id, ExamSeries.released_at.is_not(None))
            .group_by(ExamSeries.exam, ExamSeries.year)
            .order_by(func.max(ExamSeries.year).desc(), ExamSeries.exam)
        )
    ]
    _audit(session, phone, learner_id, "status_shown", session_id, now)
    return LearnerStatus(
        masked_name=learner.masked_name, grade=learner.grade, school=learner.institution.name,
        enrolment=enrolment, other_school=other, admitted_on=admitted, released_results=released,
    )
