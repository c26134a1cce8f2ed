"""One USSD hop, provider-neutral: session lookup, retry detection, locking, the menu step, saving.

Rules: an answer already given for (session id, text) is returned again with no side effect; two
concurrent identical hops act once (the loser waits for the winner's answer); state is never
rebuilt by replaying ``text`` through screens; a new session of a phone whose last one dropped
mid-flow within 5 minutes is offered to continue.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from menus.app import build_engine
from menus.engine import Context, Engine
from menus.services import Services
from menus.texts import DEFAULT_LANGUAGE, LANGUAGES, text

from .. import degraded
from ..metrics import USSD_HOPS
from ..ratelimit import Counted, Limit, RateLimiter
from .caller import CallerServices
from .messages import UssdAnswer, UssdRequest
from .sessions import Opened, ResumeAction, SessionRecord, SessionStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
KENYA_OFFSET = timedelta(hours=3)  # East Africa Time, no daylight saving: the caller's calendar


class HopHandler:
    def __init__(
        self, store: SessionStore, services: Services, ussd_code: str, *, engine: Engine | None = None,
        limiter: RateLimiter | None = None, hops_per_minute: int = 0,
    ) -> None:
        self.store = store
        self.services = services
        self.ussd_code = ussd_code
        self.engine = engine or build_engine()
        self.limiter = limiter if hops_per_minute > 0 else None
        self.hop_limit = Limit("ussd_hops_per_phone", hops_per_minute, 60)

    def handle(self, request: UssdRequest) -> UssdAnswer:
        """Answer one hop; any failure (Redis or database down, a bug) is a polite END, never an error,
        counted busy in ``elimu_ussd_hops_total`` and, with its cause, ``elimu_degraded_answers_total``."""
        if request.phone is None:
            count_hop("none", "not_kenyan")
            return UssdAnswer(text(DEFAULT_LANGUAGE, "end.not_kenyan"), end=True)
        opened: list[Opened] = []  # what the hop read in Redis, once read: the busy answer speaks its language
        try:
            return self._handle(request, request.phone, opened)
        except Exception as exc:  # noqa: BLE001 - the caller must always get a well-formed answer
            frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            where = f"{frame.filename}:{frame.lineno}" if frame else "?"
            # Type and place only: messages of database errors can carry phone numbers or UPIs.
            log.error("ussd hop failed: %s at %s (session %s)", type(exc).__name__, where, request.session_id[:40])
            count_hop("none", "busy")
            degraded.count_answer("busy", exc)  # by cause: database, redis, outage or error (a bug)
            language = spoken_language(opened[0], request.phone) if opened else DEFAULT_LANGUAGE
            return UssdAnswer(text(language, "end.busy"), end=True)

    def _handle(self, request: UssdRequest, phone: str, seen: list[Opened]) -> UssdAnswer:
        # One round trip reads the session and takes its lock, and counts the hop against the
        # phone's limit; a retried hop (its answer stored, or its twin still acting) then gives the
        # count (and the lock) back, so it is never counted, and a refused one is taken back too,
        # as ``RateLimiter.hit`` does.
        counted: list[Counted] = []

        def count(pipe) -> None:
            if self.limiter is not None:
                counted.append(self.limiter.count(pipe, phone, [self.hop_limit]))

        opened = self.store.open(request.session_id, phone, count if self.limiter is not None else None)
        record, token = opened.record, opened.token
        seen.append(opened)

        def give_back(pipe) -> None:
            if counted:
                self.limiter.take_back(pipe, counted[0])  # type: ignore[union-attr]

        digest = self.store.digest(request.session_id, request.text)
        if record is not None and record.phone == phone and (known := record.answer_for(digest)):
            self.store.give_back(request.session_id, token, give_back if counted else None)
            count_hop(record.state.get("screen", "none"), "replayed")
            return known  # a retried hop: same answer, no second side effect
        if token is None:  # a twin of the hop holding the session: not counted against the limit
            self.store.give_back(request.session_id, None, give_back if counted else None)
            waited = self.store.wait_for_answer(request.session_id, request.text, phone)
            mine = record is None or record.phone == phone  # None: the session's first hop still acting
            screen = record.state.get("screen", "none") if record is not None and mine else "none"
            if waited is not None:  # that hop's answer, given again as a retried hop's is
                answer, shown = waited  # counted on the screen it shows, as that hop counted it
                count_hop(shown or screen, "replayed")
                return answer
            # busy: the other hop held the session past the wait, or the session id is another phone's
            count_hop(screen, "locked" if mine else "other_phone")
            return UssdAnswer(text(spoken_language(opened, phone), "end.busy"), end=True)
        if counted and not self.limiter.judge(counted[0], opened.extra).allowed:  # type: ignore[union-attr]
            self.store.give_back(request.session_id, token, give_back)
            count_hop(record.state.get("screen", "none") if record else "none", "rate_limited")
            return UssdAnswer(text(spoken_language(opened, phone), "end.slow_down", code=self.ussd_code), end=True)
        saved = False
        try:
            if record is not None and record.phone != phone:  # a session id another phone holds
                count_hop("none", "other_phone")
                return UssdAnswer(text(spoken_language(opened, phone), "end.busy"), end=True)
            answer, record, resume = self._step(request, phone, record, digest, opened.resume_raw)
            if not self.store.save(record, resume, opened):
                log.warning("ussd hop of session %s outlived its lock; another hop holds the session, "
                            "its record kept", request.session_id[:40])
            saved = True
            screen = str(record.state.get("screen"))
            count_hop(screen, "end" if answer.end else "con")
            if log.isEnabledFor(logging.DEBUG):
                log.debug("ussd hop %d of session %s: %s%s", record.hops, request.session_id[:40], screen,
                          " (end)" if answer.end else "")
            return answer
        finally:
            if not saved:
                self.store.release(request.session_id, token)

    def _step(
        self, request: UssdRequest, phone: str, record: SessionRecord | None, digest: str,
        resume_raw: bytes | None = None,
    ) -> tuple[UssdAnswer, SessionRecord, ResumeAction]:
        live = record is not None and not record.ended
        services: Any = self.services
        if hasattr(services, "caller"):  # the registry's: language and standing read once a session
            services = CallerServices(services, phone, record.caller if live else None,  # type: ignore[union-attr]
                                      getattr(self.services, "clock", utc_now))
        now = getattr(self.services, "clock", utc_now)()
        ctx = Context(phone=phone, session_id=request.session_id, services=services, ussd_code=self.ussd_code,
                      today=(now + KENYA_OFFSET).date())
        value = record.new_input(request.text, self.store.digest) if live else None  # type: ignore[union-attr]
        if record is None or record.ended:
            # A new (or expired, or finished) session starts at the top: the text is not replayed.
            resume_from = self.store.parse_resume(resume_raw, request.session_id)
            reply, state = self.engine.start(ctx, resume_from)
            record = SessionRecord(session_id=request.session_id, phone=phone, state=state)
        elif value is None:
            reply, state = self.engine.show(ctx, record.state)
        else:
            reply, state = self.engine.step(ctx, record.state, value)
        answer = UssdAnswer(reply.text, reply.end)
        record.record(request.text, digest, answer, state, self.store.clock())
        record.caller = services.saved_memo() if isinstance(services, CallerServices) else None
        resume: ResumeAction
        if reply.end:
            # too many invalid answers on a screen worth coming back to (the code, the PIN): the
            # point saved on arriving there stays, so a redial can continue instead of starting over
            resume = "keep" if reply.gave_up and self.engine.resumable(state) else "drop"
        elif state["screen"] == self.engine.resume_screen:
            resume = "keep"  # the offer itself: the saved point stays until the caller chooses
        else:
            resume = "set" if self.engine.resumable(state) else "drop"
        return answer, record, resume


_HOP_COUNTERS: dict[tuple[str, str], Any] = {}


def count_hop(screen: str, outcome: str) -> None:
    """One hop in ``USSD_HOPS``; each (screen, outcome)'s counter is looked up once (``labels``
    checks and locks on every call)."""
    key = (str(screen), outcome)
    counter = _HOP_COUNTERS.get(key)
    if counter is None:
        counter = _HOP_COUNTERS[key] = USSD_HOPS.labels(*key)
    counter.inc()


def spoken_language(opened: Opened, phone: str) -> str:
    """The language of an answer the menus do not give (busy, slow down), from what the hop's one
    round trip to Redis read: the session's when it is ``phone``'s, else that of ``phone``'s dropped
    session (its resume point), else the default. Never the registry's: these answers come when the
    service is flooded or failing, and the hop limit is there to keep a flood off the database."""
    record = opened.record
    if record is not None and record.phone == phone:
        language = record.state.get("lang")
    else:
        language = resume_language(opened.resume_raw)
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def resume_language(raw: bytes | None) -> object:
    """The language of a resume point as ``SessionStore.open`` read it (None when there is none)."""
    if not raw:
        return None
    try:
        saved = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    state = saved.get("state") if isinstance(saved, dict) else None
    return state.get("lang") if isinstance(state, dict) else None


def utc_now() -> datetime:
    return datetime.now(UTC)
