"""USSD sessions in Redis.

- ``ussd:s:<session id>``: one JSON value per session (phone, menu state, the length and keyed
  digest of the text last acted on (``TextDigest``: never the text, which holds PINs), hop count,
  last-touched time, the answers already given by text digest, and the caller's language and
  standing as read at the start, see ``gateway.ussd.caller``), TTL ``SESSION_TTL``,
  refreshed on every hop. Writing the new state and its answer is one ``SET``, so a retried hop
  either finds its answer or finds the state from before it: never half of each.
- ``ussd:lock:<session id>``: ``SET NX PX`` while one hop acts; a concurrent twin waits for its answer.
- ``ussd:resume:<phone>``: the state of a session that was mid-flow, for ``RESUME_WINDOW`` seconds.

A hop costs two round trips: ``open`` takes the lock and reads the session and the phone's resume
point in one batch of commands (the caller may add its own, e.g. the hop count of the rate limit),
and ``save`` writes and unlocks in another. Both go through ``gateway.redis_link``, on a
connection the calling thread keeps.

Expiry is judged by the injected clock (the Redis TTL is the backstop), so tests move time
without sleeping.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import redis as redis_lib

from menus.engine import PLAIN_JSON

from ..redis_link import ThreadLink
from .messages import UssdAnswer

SESSION_TTL = 200  # seconds: a little over the telcos' 180 s
RESUME_WINDOW = 300  # seconds: "dial again within 5 minutes"
# A hop's lock outlives the longest a provider waits for its answer (AT: 10 s): a twin of the hop
# that arrives while the provider still waits finds it held, however slow the database is. A lock
# left by a killed process only holds up a session the provider has given up on.
PROVIDER_ANSWER_MS = 10_000
LOCK_MS = 15_000
MAX_ANSWERS = 12
WAIT_STEP = 0.05

ResumeAction = Literal["set", "keep", "drop"]


class TextDigest:
    """A hop's full text as a short keyed digest, salted by its session: what the session record
    keeps of it. The text holds every input of the session (PINs, one-time codes), which is never
    stored as typed, nor as a plain hash (ten thousand PINs are hashed in a millisecond)."""

    def __init__(self, key: bytes) -> None:
        # keyed once: a copy of it per digest is half the CPU of ``hmac.digest``, which looks
        # the hash up and keys it anew each time (a hop takes one or two)
        self._keyed = hmac.new(key, digestmod="sha256")

    def __call__(self, session_id: str, text: str) -> str:
        mac = self._keyed.copy()
        mac.update(f"{session_id}\x00{text}".encode("utf-8", "replace"))
        return mac.hexdigest()[:32]


@dataclass
class SessionRecord:
    session_id: str
    phone: str
    state: dict[str, Any]
    last_length: int = 0  # of the text last acted on; the text itself is kept as ``last_digest``
    last_digest: str = ""
    hops: int = 0
    touched: float = 0.0
    ended: bool = False
    answers: dict[str, list[Any]] = field(default_factory=dict)  # text digest -> [end, text]
    caller: list[Any] | None = None  # the caller's language and standing as read (``gateway.ussd.caller``)

    def answer_for(self, digest: str) -> UssdAnswer | None:
        found = self.answers.get(digest)
        return UssdAnswer(text=found[1], end=bool(found[0])) if found else None

    def new_input(self, text_now: str, digest: TextDigest) -> str | None:
        """The input ``text_now`` adds to the text last acted on (everything after its ``*``, so a
        ``*`` the caller typed stays in it); None when ``text_now`` does not extend it."""
        if not self.last_length:
            return text_now
        cut = self.last_length
        if len(text_now) > cut and text_now[cut] == "*" and digest(self.session_id, text_now[:cut]) == self.last_digest:
            return text_now[cut + 1:]
        return None

    def record(self, text: str, digest: str, answer: UssdAnswer, state: dict[str, Any], now: float) -> None:
        self.state = state
        self.last_length, self.last_digest = len(text), digest
        self.hops += 1
        self.touched = now
        self.ended = answer.end
        self.answers[digest] = [answer.end, answer.text]
        while len(self.answers) > MAX_ANSWERS:
            self.answers.pop(next(iter(self.answers)))

    def dumps(self) -> bytes:
        # vars(), not dataclasses.asdict: the fields are plain JSON data already; asdict deep-copies
        # them. orjson: a hop's record in 1 us instead of json's 11 (and read in 1.8 instead of 9.5);
        # anything in the state that is not plain JSON data raises TypeError, as json's did
        return orjson.dumps(vars(self), option=PLAIN_JSON)

    @classmethod
    def loads(cls, raw: bytes | str) -> SessionRecord:
        return cls(**orjson.loads(raw))


@dataclass
class Opened:
    """What ``SessionStore.open`` read and took in one round trip."""

    record: SessionRecord | None  # the live session (None: unknown, expired or unreadable)
    token: str | None  # the lock's token, or None when another hop holds the lock
    resume_raw: bytes | None  # the phone's saved resume point, unparsed
    extra: list[Any]  # the answers to the caller's own commands, in order
    # time.monotonic() until which the lock is surely still the token's (its PX less a margin):
    # after it the lock may have expired and another hop of the session taken it (``save``)
    trusted_until: float = 0.0


class SessionStore:
    def __init__(self, redis: redis_lib.Redis, clock: Callable[[], float] = time.time, prefix: str = "ussd",
                 link: ThreadLink | None = None, *, digest_key: bytes) -> None:
        self.redis = redis
        self.digest = TextDigest(digest_key)
        self.link = link or ThreadLink(redis)  # the hop's two round trips
        self.clock = clock
        self.prefix = prefix

    def _session_key(self, session_id: str) -> str:
        return f"{self.prefix}:s:{session_id}"

    def _lock_key(self, session_id: str) -> str:
        return f"{self.prefix}:lock:{session_id}"

    def _resume_key(self, phone: str) -> str:
        return f"{self.prefix}:resume:{phone}"

    def load(self, session_id: str) -> SessionRecord | None:
        """The live session, or None when unknown or idle longer than ``SESSION_TTL``."""
        return self._live(self.redis.get(self._session_key(session_id)))

    def _live(self, raw: bytes | str | None) -> SessionRecord | None:
        if raw is None:
            return None
        try:
            record = SessionRecord.loads(raw)
        except (ValueError, TypeError):
            return None
        if self.clock() - record.touched > SESSION_TTL:
            return None
        return record

    def open(self, session_id: str, phone: str, add: Callable[[Any], None] | None = None) -> Opened:
        """Try to take the session's lock, then read the session and ``phone``'s resume point, in one
        round trip; ``add`` may queue more commands on it (their answers come back in ``Opened.extra``).

        Redis runs a pipeline's commands in order, so this is the same as taking the lock and then
        loading, as two calls would: the lock comes first, so a record read under a taken lock is
        the one the lock protects (only the lock's holder saves). A caller that took the lock and
        does not ``save`` must ``release`` (or ``give_back``) it."""
        token = secrets.token_hex(8)
        trusted_until = time.monotonic() + (LOCK_MS - LOCK_MS // 5) / 1000  # taken from before the SET
        pipe = self.link.pipeline()
        pipe.execute_command("SET", self._lock_key(session_id), token, "NX", "PX", LOCK_MS)
        pipe.execute_command("GET", self._session_key(session_id))
        pipe.execute_command("GET", self._resume_key(phone))
        if add is not None:
            add(pipe)
        locked, raw, resume_raw, *extra = pipe.execute()
        return Opened(self._live(raw), token if locked else None, resume_raw, extra, trusted_until)

    def give_back(self, session_id: str, token: str | None, add: Callable[[Any], None] | None = None) -> None:
        """Undo an ``open`` that will not act: drop the lock it took (just taken, by this token, so
        deleted without a check, like ``save`` does) and run ``add``'s commands, in one round trip."""
        if token is None and add is None:
            return
        pipe = self.link.pipeline()
        if token is not None:
            pipe.execute_command("DEL", self._lock_key(session_id))
        if add is not None:
            add(pipe)
        pipe.execute()

    def acquire(self, session_id: str) -> str | None:
        """Take the session's lock; returns its token, or None when another hop holds it."""
        token = secrets.token_hex(8)
        return token if self.redis.set(self._lock_key(session_id), token, nx=True, px=LOCK_MS) else None

    def release(self, session_id: str, token: str) -> None:
        key = self._lock_key(session_id)
        if self.redis.get(key) == token.encode():
            self.redis.delete(key)

    def wait_for_answer(self, session_id: str, text: str, phone: str,
                        timeout: float = 3.0) -> tuple[UssdAnswer, str | None] | None:
        """For the losing twin of a concurrent hop: the winner's answer once stored, with the screen
        it shows (from the record it was read in; None if the session has already moved past it, as
        the record keeps only its latest screen), or None. Only ``phone``'s own session answers: a hop
        of another phone that names the session id (and its text) while its owner's hop runs must
        not be handed the owner's screen."""
        deadline = time.monotonic() + timeout
        key = self.digest(session_id, text)
        while time.monotonic() < deadline:
            found = self._answer_of(session_id, key, phone)
            if found is not None:
                return found
            if not self.redis.exists(self._lock_key(session_id)):
                return self._answer_of(session_id, key, phone)
            time.sleep(WAIT_STEP)
        return None

    def _answer_of(self, session_id: str, key: str, phone: str) -> tuple[UssdAnswer, str | None] | None:
        record = self.load(session_id)
        if record is None or record.phone != phone or (answer := record.answer_for(key)) is None:
            return None
        return answer, str(record.state.get("screen")) if record.last_digest == key else None

    def save(self, record: SessionRecord, resume: ResumeAction, held: Opened | None = None) -> bool:
        """Store the session and its resume point and release the lock, in one round trip; False
        when nothing was stored because another hop of the session holds the lock now.

        The commands run in this order (a pipeline, without ``MULTI``: the session is one ``SET``,
        so a reader finds the old record or the new one, and the lock goes only after it).
        The lock is deleted without checking its token while ``held`` (the ``open`` that took it)
        trusts it still: it lives ``LOCK_MS`` (15 s), longer than a provider waits for the answer. A hop
        that outlived its lock (a slow database: each statement may take 3 s) saves only if no
        other hop took the lock meanwhile: it must not delete that hop's lock (a third twin would
        act again) nor write over the record that hop is about to save."""
        if held is not None and held.token is not None and time.monotonic() >= held.trusted_until:
            return self._save_if_held(record, resume, held.token)
        pipe = self.link.pipeline()
        self._queue_save(pipe, record, resume)
        pipe.execute_command("DEL", self._lock_key(record.session_id))
        pipe.execute()
        return True

    def _queue_save(self, pipe: Any, record: SessionRecord, resume: ResumeAction) -> None:
        pipe.execute_command("SET", self._session_key(record.session_id), record.dumps(), "EX", SESSION_TTL)
        resume_key = self._resume_key(record.phone)
        if resume == "set":
            saved = {"state": record.state, "saved_at": record.touched, "session_id": record.session_id}
            pipe.execute_command("SET", resume_key, orjson.dumps(saved, option=PLAIN_JSON), "EX", RESUME_WINDOW)
        elif resume == "drop":
            pipe.execute_command("DEL", resume_key)

    def _save_if_held(self, record: SessionRecord, resume: ResumeAction, token: str) -> bool:
        """``save`` for a hop whose lock may have expired: unless another token holds it now (checked
        with ``WATCH``, so one taken between the check and the write cancels the write)."""
        key = self._lock_key(record.session_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                holder = pipe.get(key)
                if holder is not None and holder != token.encode():
                    return False
                pipe.multi()
                self._queue_save(pipe, record, resume)
                pipe.execute_command("DEL", key)
                pipe.execute()
            except redis_lib.WatchError:
                return False
        return True

    def resume_point(self, phone: str, session_id: str) -> dict[str, Any] | None:
        """The state of this phone's dropped session if it was saved within ``RESUME_WINDOW``."""
        return self.parse_resume(self.redis.get(self._resume_key(phone)), session_id)

    def parse_resume(self, raw: bytes | str | None, session_id: str) -> dict[str, Any] | None:
        """``resume_point`` from the raw value (as ``open`` read it)."""
        if raw is None:
            return None
        try:
            saved = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(saved, dict):
            return None
        if saved.get("session_id") == session_id or self.clock() - saved.get("saved_at", 0) > RESUME_WINDOW:
            return None
        state = saved.get("state")
        return state if isinstance(state, dict) else None
