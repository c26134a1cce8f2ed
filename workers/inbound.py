"""Inbound SMS: stored on arrival (deduplicated on AT's id), answered by workers in batches.

The web request only inserts the row (``ON CONFLICT (provider_id) DO NOTHING``: AT retries every
minute for 12 hours) and pushes its id onto a Redis list; the first push into an idle *drain slot*
enqueues one ``handle_inbound`` job. That job pops ids a batch at a time and answers a whole batch
in one transaction (a handful of queries per message), then sends the replies itself, in one
backend call, instead of paying an RQ job per reply. A drain yields after a few batches so OTP
jobs waiting on the higher-priority queue go first.

A batch that comes up short waits LINGER_S (0.2 s) once for more ids, unless an OTP job is
waiting: a batch's statements and round trips cost about the same for 10 messages as for 200.
Without the wait the drains of a results-day burst (B2, ``bench/README.md``) took batches of 13
(median) and spent 1.1 ms of CPU a message in the workers and PostgreSQL; with it, batches of
200 and 0.8 ms. A reply leaves at most 0.2 s later.

A phone over its per-minute limit (``INBOUND_PER_MINUTE``, ``ELIMU_SMS_PER_MINUTE``) gets one notice a window, then nothing;
but STOP and START (``OPT_COMMANDS``) are applied and acknowledged whatever the limit (CONTRACT "SMS
commands": each by one SMS, repeats too). They still count towards the limit, so they do not make room
for other commands.

Exactly one reply per inbound message: a batch claims its rows (``handled_at IS NULL``, locked on
PostgreSQL) in the transaction that writes the replies, and writes the replies already claimed
for sending, so neither kind of row is written twice before the send. Ids lost from Redis (flush,
killed worker) are found by the reconciler (rows still unhandled and not on the list) and pushed
again.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from rq import Retry
from rq.timeouts import JobTimeoutException
from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.degraded import is_outage
from gateway.metrics import INBOUND_COMMANDS, RATE_LIMITED
from gateway.ratelimit import INBOUND_PER_MINUTE, RESULTS_PER_HOUR, Limit
from registry.arrays import among, update_rows
from registry.db import PendingMessage
from registry.models import InboundMessage, PhoneSetting, Priority, utcnow
from registry.outbox import Claimed, queue_claimed
from registry.services.audit import BATCH_KEY, batched_disclosures
from registry.services.sms_commands import Command, CommandKind, parse
from registry.services.sms_replies import Reply, prefetch_results, reply_language, respond
from registry.services.sms_texts import text as sms_text
from registry.signals import audited

from .context import backend_of, queues_of
from .queues import FAILURE_TTL, INBOUND_QUEUE
from .sending import check_claimed, schedule_retries, send_claimed

if TYPE_CHECKING:
    from gateway.redis_link import ThreadLink
    from gateway.runtime import Runtime

log = logging.getLogger(__name__)

PENDING_KEY = "elimu:sms:inbound:pending"
SLOT_KEY = "elimu:sms:inbound:drain:{slot}"
SLOTS = 2  # drains that may run at once (one per worker process on a 2-core host)
SLOT_TTL = 60  # seconds; a drain killed mid-run frees its slot after this
BATCH = 200
LINGER_S = 0.2  # a short batch waits this long once for more ids (module docstring)
_pause = time.sleep  # how a drain waits (a test sends messages meanwhile)
ROUNDS = 5  # batches per job before yielding to higher-priority queues
DRAIN_RETRY = (5, 30, 120)  # seconds before a drain that met an outage runs again
UNKNOWN_REPLY_KEY = "elimu:sms:unknown-reply:{phone}"
UNKNOWN_REPLY_GAP = 600  # at most one help reply to unknown texts per phone per 10 minutes
OPT_COMMANDS = frozenset({CommandKind.STOP, CommandKind.START})  # answered whatever the minute limit
_T = InboundMessage.__table__


def receive(
    runtime: Runtime,
    *,
    provider_id: str,
    sender: str,
    text: str,
    short_code: str | None = None,
    link_id: str | None = None,
    network_code: str | None = None,
    received_at: datetime | None = None,
) -> int | None:
    """Store one inbound SMS and hand it to the workers; None when AT sent this id before."""
    now = utcnow()
    params = {"provider_id": provider_id, "sender": sender, "text": text, "short_code": short_code,
              "link_id": link_id, "network_code": network_code, "received_at": received_at,
              "created_at": now, "updated_at": now}
    rows = runtime.db.fetch(_insert_once(runtime.db.engine.dialect.name), params)  # one autocommit statement
    message_id = rows[0][0] if rows else None
    if message_id is not None:
        try:
            hand_over(runtime, [message_id])
        except Exception as exc:  # noqa: BLE001 - stored; the reconciler hands it over later
            log.warning("inbound SMS %s stored but not handed over (%s)", message_id, type(exc).__name__)
    return message_id


@functools.cache
def _insert_once(dialect: str):
    """``INSERT … ON CONFLICT (provider_id) DO NOTHING RETURNING id``, built once per dialect."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    columns = ("provider_id", "sender", "text", "short_code", "link_id", "network_code", "received_at",
               "created_at", "updated_at")
    return (
        insert(_T)
        .values({name: bindparam(name) for name in columns})
        .on_conflict_do_nothing(index_elements=["provider_id"])
        .returning(_T.c.id)
    )


def hand_over(runtime: Runtime, ids: Sequence[int]) -> None:
    """Push ids for the drains; start a drain job when the slot is idle."""
    if not ids:
        return
    slot = ids[0] % SLOTS
    pipe = runtime.link.pipeline()  # the web's inbound callback: one round trip on the thread's connection
    pipe.execute_command("RPUSH", PENDING_KEY, *ids)
    pipe.execute_command("SET", SLOT_KEY.format(slot=slot), "1", "NX", "EX", SLOT_TTL)
    _, started = pipe.execute()
    if started:
        _enqueue_drain(runtime, slot)


def hand_over_stale(runtime: Runtime, cutoff: datetime) -> int:
    """For the reconciler: hand over again the messages still unanswered that arrived before
    ``cutoff`` and are not waiting on the list (ids lost with Redis, or with a drain killed
    mid-batch); when all of them wait there, start a drain in case none runs. A results-day backlog
    waits on the list longer than the cutoff: pushing it again each pass would only make the drains
    take each id twice. Returns how many were handed over."""
    unhandled = unhandled_before(runtime, cutoff)
    if not unhandled:
        return 0
    waiting = {int(x) for x in runtime.redis.lrange(PENDING_KEY, 0, -1)}
    stale = [message_id for message_id in unhandled if message_id not in waiting]
    for start in range(0, len(stale), 500):
        hand_over(runtime, stale[start:start + 500])  # starts a drain if its slot is free
    if not stale:
        _wake_drain(runtime)
    return len(stale)


def _wake_drain(runtime: Runtime) -> None:
    """Start a drain on a slot no drain holds (a drain killed mid-run frees its slot after SLOT_TTL)."""
    for slot in range(SLOTS):
        if runtime.redis.set(SLOT_KEY.format(slot=slot), "1", nx=True, ex=SLOT_TTL):
            _enqueue_drain(runtime, slot)
            return


def _enqueue_drain(runtime: Runtime, slot: int) -> None:
    from .jobs import handle_inbound

    queues_of(runtime).get(INBOUND_QUEUE).enqueue_call(
        handle_inbound, args=(slot,), result_ttl=0, failure_ttl=FAILURE_TTL, timeout=300,
        retry=Retry(max=len(DRAIN_RETRY), interval=list(DRAIN_RETRY)),
        description=f"answer inbound SMS (slot {slot})",
    )


def kick(runtime: Runtime) -> int:
    """Start a drain for ids already waiting (a burst worker, after an outage); returns how many wait."""
    waiting = int(runtime.redis.llen(PENDING_KEY))
    if waiting:
        _enqueue_drain(runtime, 0)
    return waiting


def drain(runtime: Runtime, slot: int) -> int:
    """Answer handed-over messages until the list is empty or ROUNDS batches are done; returns the
    number of ids taken. Holding the slot flag, it re-checks the list after releasing it, so a push
    racing with the release is never stranded.

    When the database or Redis is away, the batch in hand goes back onto the list, the slot is freed
    (the next message handed over starts a drain) and the job raises, so RQ runs it again later.
    """
    redis = runtime.redis
    flag = SLOT_KEY.format(slot=slot)
    taken = 0
    for _ in range(ROUNDS):
        raw = redis.lpop(PENDING_KEY, BATCH)
        if raw and len(raw) < BATCH:
            raw = _top_up(runtime, raw)
        if raw:
            redis.expire(flag, SLOT_TTL)
            ids = sorted({int(x) for x in raw})
            taken += len(raw)
            try:
                handle_batch(runtime, ids)
            except Exception as exc:
                if is_outage(exc):
                    _give_back(runtime, ids, flag)
                raise
            continue
        redis.delete(flag)
        if not redis.llen(PENDING_KEY) or not redis.set(flag, "1", nx=True, ex=SLOT_TTL):
            return taken
    _enqueue_drain(runtime, slot)  # more waiting: a fresh job, after whatever outranks it
    return taken


def _top_up(runtime: Runtime, raw: list[bytes]) -> list[bytes]:
    """A short batch after waiting LINGER_S for more ids; at once when an OTP job is waiting."""
    if LINGER_S <= 0 or runtime.redis.llen(queues_of(runtime).get(Priority.OTP.value).key):
        return raw
    _pause(LINGER_S)
    return raw + (runtime.redis.lpop(PENDING_KEY, BATCH - len(raw)) or [])


def _give_back(runtime: Runtime, ids: Sequence[int], flag: str) -> None:
    log.warning("answering %d inbound SMS waits for the database; handed back", len(ids))
    try:
        pipe = runtime.redis.pipeline(transaction=False)
        pipe.lpush(PENDING_KEY, *reversed(ids))
        pipe.delete(flag)
        pipe.execute()
    except Exception as exc:  # noqa: BLE001 - Redis is away too: the reconciler finds the rows
        log.warning("could not hand back inbound SMS (%s); the reconciler will", type(exc).__name__)


def handle_batch(runtime: Runtime, ids: Sequence[int]) -> None:
    """Answer the unhandled messages among ``ids`` and send the replies. A message that fails on
    its own (not an outage) is marked ``command = error`` so it cannot hold up the others."""
    try:
        claimed = answer(runtime, ids)
    except Exception as exc:
        if is_outage(exc):
            raise
        if len(ids) == 1:
            log.exception("inbound SMS %s could not be answered; marked as an error", ids[0])
            _mark_error(runtime, ids[0])
            return
        log.warning("a batch of %d inbound SMS failed; answering them one by one", len(ids))
        for message_id in ids:
            handle_batch(runtime, [message_id])
        return
    send_replies(runtime, claimed)


def answer(runtime: Runtime, ids: Sequence[int]) -> list[Claimed]:
    """Claim the unhandled rows among ``ids`` and write their replies, in one transaction; the
    replies are written claimed for this worker to send (``registry.outbox.queue_claimed``). A batch
    whose transaction fails takes back what it counted against the per-phone limits, so the batch
    redone (whole after an outage, or one message at a time) counts each message once."""
    settings = runtime.settings
    gate = RedisGate(runtime.redis, link=runtime.link,
                     results_limit=replace(RESULTS_PER_HOUR, count=settings.results_per_hour),
                     inbound_limit=replace(INBOUND_PER_MINUTE, count=settings.sms_per_minute))
    ussd_code = settings.ussd_code
    provider = backend_of(runtime).name
    now = utcnow()
    with gate.booking(), runtime.db.transaction() as session:
        rows = _claim(session, ids, now)
        if not rows:
            return []
        parsed = [(row, parse(row.text)) for row in rows]
        senders = {row.sender for row in rows}
        languages = dict(session.execute(
            select(PhoneSetting.phone, PhoneSetting.language).where(among(session, PhoneSetting.phone, senders))
        ).all())
        lookup = prefetch_results(session, (command for _, command in parsed), senders)
        gate.prepare_inbound(Counter(row.sender for row in rows))
        parsed_allowed = [(row, c) for row, c in parsed if _answerable(gate, row.sender, c)]
        gate.prepare(
            results=Counter(row.sender for row, c in parsed_allowed
                            if c.kind is CommandKind.RESULTS and c.valid_number),
            unknown={row.sender for row, c in parsed_allowed if c.kind is CommandKind.UNKNOWN},
        )
        allowed_ids = {row.id for row, _ in parsed_allowed}
        replies, commands = [], []
        # audit rows and replies go in one INSERT each (registry.arrays)
        with session.no_autoflush, batched_disclosures(session):
            for row, command in parsed:
                if row.id in allowed_ids:
                    reply = respond(session, message_id=row.id, phone=row.sender, command=command,
                                    stored_language=languages.get(row.sender), gate=gate, ussd_code=ussd_code,
                                    lookup=lookup)
                    kind = command.kind.value
                else:  # over the per-phone minute limit: one notice per window, then nothing
                    language = reply_language(command, languages.get(row.sender))
                    first = gate.first_too_many_reply(row.sender)
                    reply = Reply(sms_text("too_many", language)) if first else None
                    kind = "limited"
                commands.append({"id": row.id, "command": kind})
                if reply is not None:  # the premium link only where the reply is what was paid for
                    replies.append((row.sender, reply.kind, reply.text, row.link_id if reply.charged else None))
            audited(session, (disclosure["action"] for disclosure in session.info[BATCH_KEY]))  # counted at commit
        # one increment per command of the batch, not per message (labels() and inc() cost ~7 us a call)
        for kind, count in Counter(command["command"] for command in commands).items():
            INBOUND_COMMANDS.labels(kind).inc(count)
        claimed = queue_claimed(session, replies, provider)
        update_rows(session, _T, commands, find_by_key=True, handled_at=now)  # not a hash of every text
        return claimed


def _answerable(gate: RedisGate, phone: str, command: Command) -> bool:
    """Whether a message gets its command's answer: within the phone's minute limit, or an opt-out or
    opt-in (counted against the limit all the same, in arrival order)."""
    answerable = gate.inbound_allowed(phone) or command.kind in OPT_COMMANDS
    if not answerable:
        RATE_LIMITED.labels(gate.inbound_limit.name).inc()
    return answerable


def _claim(session: Session, ids: Sequence[int], now: datetime) -> list[Row]:
    """The unhandled rows among ``ids``, in id order, held by this transaction. PostgreSQL locks
    them (``FOR UPDATE SKIP LOCKED``: a row another drain holds is left to it), and the one UPDATE
    that records each command marks it handled: a row is written once, not twice. SQLite, which has
    no row locks, marks them handled at once with a conditional UPDATE (its writers take turns).

    On PostgreSQL the rows are found by their ids alone and those already handled left out here, not
    by ``handled_at IS NULL`` in the statement: that condition lets the planner read the partial index
    of unhandled rows (``ix_inbound_messages_unhandled``), which statistics taken before a burst hold
    to be nearly empty, and it then read the whole backlog for each batch (14 ms of server CPU a
    batch of 200 with 8,000 texts waiting, against 0.8 ms by the primary key). A handled row among
    ``ids`` (handed over twice) is locked to the end of the batch and not answered."""
    columns = (InboundMessage.id, InboundMessage.sender, InboundMessage.text, InboundMessage.link_id)
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            select(*columns, InboundMessage.handled_at).where(among(session, InboundMessage.id, ids))
            .order_by(InboundMessage.id).with_for_update(skip_locked=True)
        )
        return [row for row in rows if row.handled_at is None]  # the latest version's, once locked
    unhandled = (among(session, InboundMessage.id, ids), InboundMessage.handled_at.is_(None))
    rows = session.execute(
        update(InboundMessage).where(*unhandled).values(handled_at=now).returning(*columns)
        .execution_options(synchronize_session=False)
    ).all()
    return sorted(rows, key=lambda r: r.id)


def send_replies(runtime: Runtime, claimed: Sequence[Claimed]) -> None:
    """Send a batch's replies in this job, once the claim's disclosure check has ended those naming a
    learner the phone lost since the batch committed (``check_claimed``: a UPI text to a phone
    unlinked meanwhile); if the send fails outright (the rows are then back to ``queued``), one RQ
    job per reply instead. A check that fails leaves the rows claimed: the reconciler puts them back
    to ``queued`` after their lease, and a worker's claim checks them then."""
    if not claimed:
        return
    try:
        claimed = check_claimed(runtime, claimed)
    except Exception as exc:
        if isinstance(exc, JobTimeoutException):
            raise
        log.warning("checking %d replies before sending failed (%s); the reconciler sends them after their lease",
                    len(claimed), type(exc).__name__, exc_info=not is_outage(exc))
        return
    if not claimed:
        return
    try:
        summary = send_claimed(runtime, claimed)
        schedule_retries(runtime, summary.retries)
    except Exception as exc:  # noqa: BLE001 - the rows are stored; jobs (or the reconciler) send them
        log.warning("sending %d replies inline failed (%s); queueing them", len(claimed), type(exc).__name__)
        if runtime.db.dispatch is not None:
            runtime.db.dispatch([PendingMessage(c.id, c.priority) for c in claimed])
        if isinstance(exc, JobTimeoutException):
            raise  # the drain's time is up: it stops here (its rows are stored, its replies queued)


def _mark_error(runtime: Runtime, message_id: int) -> None:
    with runtime.db.transaction() as session:
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == message_id, InboundMessage.handled_at.is_(None))
            .values(handled_at=utcnow(), command="error")
            .execution_options(synchronize_session=False)
        )


def unhandled_before(runtime: Runtime, cutoff: datetime, limit: int = 10_000) -> list[int]:
    """Ids of messages still unanswered that arrived before ``cutoff`` (for the reconciler)."""
    with runtime.db.session() as session:
        return list(session.scalars(
            select(InboundMessage.id)
            .where(InboundMessage.handled_at.is_(None), InboundMessage.created_at < cutoff)
            .order_by(InboundMessage.created_at)
            .limit(limit)
        ))


class RedisGate:
    """The per-phone limits of SMS answers, in Redis (shared by every worker). ``prepare`` books a
    whole batch in one round trip; a phone not prepared is asked about on its own.

    What a gate books (counts, and the once-a-window reply slots it took) it keeps a note of, and
    ``take_back`` undoes it: a batch whose transaction failed answered nothing, so when it is redone
    (whole, after an outage; one message at a time, after a bug) each message is counted once, and
    a help or slow-down reply not sent is not lost with its slot. Undoing is simpler than booking
    per message id (an id booked by a failed batch of five would count before the other four when
    they are redone one by one) and keeps the counters exact. Only a worker killed mid-batch leaves
    its batch counted twice, until the window ends (the reconciler redoes it after three minutes,
    when the minute's window is over)."""

    RESULTS_KEY = "elimu:sms:results-limit:{phone}:{window}"

    INBOUND_KEY = "elimu:sms:inbound-limit:{phone}:{window}"
    TOO_MANY_KEY = "elimu:sms:too-many-reply:{phone}:{window}"

    def __init__(self, redis, results_limit: Limit = RESULTS_PER_HOUR,
                 inbound_limit: Limit = INBOUND_PER_MINUTE, link: ThreadLink | None = None) -> None:
        self.redis = redis
        # a batch's 400-800 counter commands: on the thread's kept connection when there is one
        # (``gateway.redis_link``: raw commands and replies, without a redis-py pipeline's
        # per-command argument handling and response callbacks)
        self._batch = link.pipeline if link is not None else lambda: redis.pipeline(transaction=False)
        self.results_limit = results_limit
        self.inbound_limit = inbound_limit
        self._results_left: dict[str, int] = {}
        self._unknown_first: dict[str, bool] = {}
        self._inbound_left: dict[str, int] = {}
        self._counted: list[tuple[str, int, int]] = []  # (key, count, window): what take_back undoes
        self._slots: list[str] = []  # once-a-window reply slots taken

    def prepare_inbound(self, messages: Counter[str]) -> None:
        """Count each phone's messages of this batch against its per-minute window (one round trip);
        nothing when the limit is off (a count of 0: ``ELIMU_SMS_PER_MINUTE=0``)."""
        if not messages or self.inbound_limit.count <= 0:
            return
        limit = self.inbound_limit
        self._window = int(time.time() // limit.window_s)
        pipe = self._batch()
        for phone, count in messages.items():
            key = self.INBOUND_KEY.format(phone=phone, window=self._window)
            pipe.execute_command("INCRBY", key, count)
            pipe.execute_command("EXPIRE", key, limit.window_s + 1)
        answers = pipe.execute()
        for i, (phone, count) in enumerate(messages.items()):
            self._counted.append((self.INBOUND_KEY.format(phone=phone, window=self._window), count, limit.window_s))
            used_before = int(answers[2 * i]) - count
            self._inbound_left[phone] = max(limit.count - used_before, 0)

    def inbound_allowed(self, phone: str) -> bool:
        """Whether this message of ``phone`` is within its per-minute limit (in arrival order)."""
        if self.inbound_limit.count <= 0:
            return True
        left = self._inbound_left.get(phone, 1)
        self._inbound_left[phone] = left - 1
        return left > 0

    def first_too_many_reply(self, phone: str) -> bool:
        """True once per phone per window: the one SMS telling a flooding phone to slow down."""
        key = self.TOO_MANY_KEY.format(phone=phone, window=getattr(self, "_window", 0))
        taken = bool(self.redis.set(key, "1", nx=True, ex=self.inbound_limit.window_s + 1))
        if taken:
            self._slots.append(key)
        return taken

    def prepare(self, results: Counter[str], unknown: Iterable[str] = ()) -> None:
        """Count ``results[phone]`` queries per phone against the hourly window, and take the
        10-minute help slot of each phone that sent an unknown text. With the hourly limit off (a
        count of 0: ``ELIMU_RESULTS_PER_HOUR=0``) queries are not counted."""
        if self.results_limit.count <= 0:
            results = Counter()
        unknown = sorted(set(unknown) - set(self._unknown_first))
        if not results and not unknown:
            return
        limit = self.results_limit
        window = int(time.time() // limit.window_s)
        pipe = self._batch()
        for phone, count in results.items():
            key = self.RESULTS_KEY.format(phone=phone, window=window)
            pipe.execute_command("INCRBY", key, count)
            pipe.execute_command("EXPIRE", key, limit.window_s + 1)
        for phone in unknown:  # a reply of OK (or True through a pipeline) when the slot was free
            pipe.execute_command("SET", UNKNOWN_REPLY_KEY.format(phone=phone), "1", "NX", "EX", UNKNOWN_REPLY_GAP)
        answers = pipe.execute()
        for i, (phone, count) in enumerate(results.items()):
            self._counted.append((self.RESULTS_KEY.format(phone=phone, window=window), count, limit.window_s))
            used_before = int(answers[2 * i]) - count
            self._results_left[phone] = self._results_left.get(phone, 0) + max(limit.count - used_before, 0)
        for phone, taken in zip(unknown, answers[2 * len(results):], strict=True):
            self._unknown_first[phone] = bool(taken)
            if taken:
                self._slots.append(UNKNOWN_REPLY_KEY.format(phone=phone))

    @contextmanager
    def booking(self) -> Iterator[RedisGate]:
        """The gate, taking back what it booked if the block fails (its batch answered nothing)."""
        try:
            yield self
        except BaseException:
            self.take_back()
            raise

    def take_back(self) -> None:
        """Undo what this gate booked (its batch failed): the counts decremented (each key's expiry
        set again, so a window that ended meanwhile leaves no key behind), the slots freed. Best
        effort: with Redis away the counts stay, as after a killed worker."""
        counted, slots = self._counted, self._slots
        self._counted, self._slots = [], []
        if not counted and not slots:
            return
        try:
            pipe = self._batch()
            for key, count, window_s in counted:
                pipe.execute_command("DECRBY", key, count)
                pipe.execute_command("EXPIRE", key, window_s + 1)
            if slots:
                pipe.execute_command("DEL", *slots)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - the batch's own error is what the caller reports
            log.warning("per-phone counts of a failed batch not taken back (%s)", type(exc).__name__)

    def first_unknown_reply(self, phone: str) -> bool:
        if phone not in self._unknown_first:
            self.prepare(Counter(), [phone])
        first = self._unknown_first[phone]
        self._unknown_first[phone] = False  # one help per phone, also within a batch
        return first

    def results_allowed(self, phone: str) -> bool:
        if self.results_limit.count <= 0:
            return True
        if phone not in self._results_left:
            self.prepare(Counter({phone: 1}))
        left = self._results_left[phone]
        self._results_left[phone] = left - 1
        if left <= 0:
            RATE_LIMITED.labels(self.results_limit.name).inc()
        return left > 0
