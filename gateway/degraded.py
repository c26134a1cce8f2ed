"""Degraded mode: what each callback answers while PostgreSQL or Redis is down, and the spool.

- USSD hops: a well-formed ``END`` saying the service is busy (200).
- Inbound SMS: a deliberate 503 with ``Retry-After``, so AT retries (it does, every minute for 12 h).
- Delivery reports and USSD end-of-session events: accepted (200) and appended to a spool file in
  the instance folder with the time they came (a report is applied at that time, not its replay's);
  the spool is replayed by itself once the database answers again (after the next callback that
  succeeds, and by ``replay_spool`` from the workers' housekeeping).
- Anything else that crashes: never a 500 with a traceback. Callbacks get the answers above;
  other paths a JSON 503.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import redis.exceptions as redis_errors
from flask import Flask, Response, current_app, jsonify, request
from sqlalchemy import exc as sa_errors

from .metrics import DEGRADED_ANSWERS
from .plain import plain
from .runtime import Runtime

log = logging.getLogger(__name__)

RETRY_AFTER_S = 60
SPOOLED_PATHS = {
    "/sms/africastalking/delivery": "delivery",
    "/ussd/africastalking/events": "ussd-events",
}
# The fields of each spooled callback its replay reads (``parse_delivery``, ``event_fields``); only they
# reach the disk. AT's end-of-session event also carries ``lastAppResponse``, the last screen the
# session showed (a learner's masked name, school, status), which nothing stores.
SPOOLED_FIELDS = {
    "delivery": frozenset({"id", "status", "phoneNumber", "networkCode", "failureReason", "retryCount"}),
    "ussd-events": frozenset({"sessionId", "phoneNumber", "serviceCode", "networkCode", "status", "durationInMillis",
                              "hopsCount", "input", "errorMessage", "cost", "date"}),
}
# Added to each spooled callback's form (over any such field the caller sent): the time it came,
# which a delivery report replayed later is applied at (a message's sent_at and delivered_at).
RECEIVED_AT = "elimu_received_at"
OUTAGES: tuple[type[BaseException], ...] = (
    sa_errors.OperationalError,
    sa_errors.InterfaceError,
    sa_errors.TimeoutError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    ConnectionError,
    TimeoutError,
)
_replay_lock = threading.Lock()


def is_outage(exc: BaseException) -> bool:
    """A failure of PostgreSQL or Redis (down, restarting, unreachable), not a bug."""
    if isinstance(exc, OUTAGES):
        return True
    return isinstance(exc, sa_errors.DBAPIError) and bool(exc.connection_invalidated)


def spool_dir(runtime: Runtime) -> Path:
    return Path(runtime.settings.instance_path) / "spool"


def spool(runtime: Runtime, kind: str, form: dict[str, str]) -> None:
    """Append one callback's form to ``instance/spool/<kind>.jsonl`` (safe across processes). A
    file a replayer took (renamed) between this open and its lock is let go for the fresh spool:
    a line added to it after the replayer read it would be lost."""
    folder = spool_dir(runtime)
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps(form, ensure_ascii=False) + "\n"
    path = folder / f"{kind}.jsonl"
    while True:
        with open(path, "a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            if _names(path, fh):
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
                return


def _names(path: Path, fh: IO[str]) -> bool:
    """Whether ``path`` still names the file open as ``fh`` (not renamed or removed meanwhile)."""
    try:
        named, held = os.stat(path), os.fstat(fh.fileno())
    except FileNotFoundError:
        return False
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _appliers() -> dict[str, Callable[[Runtime, dict[str, str]], None]]:
    def delivery(runtime: Runtime, form: dict[str, str]) -> None:
        from registry.models import utcnow
        from workers.reports import apply as apply_report

        from .sms.africastalking import BadCallback, parse_delivery

        try:
            report = parse_delivery(form)
        except BadCallback:
            return
        if report.status is None:
            return
        apply_report(runtime, report.provider_message_id, report.status, report.failure_reason, report.phone,
                     _received(form) or utcnow())

    def ussd_events(runtime: Runtime, form: dict[str, str]) -> None:
        from .ussd.events import event_fields, record_event

        fields = event_fields(form)
        if fields is not None:
            record_event(runtime.db, fields)

    return {"delivery": delivery, "ussd-events": ussd_events}


def _received(form: dict[str, str]) -> datetime | None:
    """When a spooled callback came (None for a line spooled without it, or not a time)."""
    try:
        at = datetime.fromisoformat(form[RECEIVED_AT])
    except (KeyError, TypeError, ValueError):
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def replay_spool(runtime: Runtime) -> int:
    """Apply spooled callbacks; stop (keeping the rest) at the first outage. Returns how many were applied.

    A replayer holds the file it replays under an exclusive lock (``flock``) from before it takes it
    (renames ``<kind>.jsonl`` to ``<kind>.<pid>-<token>.replaying``) until it has removed it. The
    kernel drops the locks of a process that dies, so a ``.replaying`` file no one holds was left by a
    replayer that died mid-way, whatever became of its pid, and is replayed again (callbacks it had
    applied already are applied twice: a delivery report only moves a message forward). Only the
    process that gets the lock replays a file: two never replay the same one.
    """
    folder = spool_dir(runtime)
    if not folder.is_dir():
        return 0
    applied = 0
    with _replay_lock:
        for kind, apply in _appliers().items():
            for path in [*sorted(folder.glob(f"{kind}.*.replaying")), folder / f"{kind}.jsonl"]:
                done, paused = _replay_file(runtime, kind, apply, path)
                applied += done
                if paused:
                    return applied
    if applied:
        log.info("replayed %d spooled callbacks", applied)
    return applied


def _replay_file(
    runtime: Runtime, kind: str, apply: Callable[[Runtime, dict[str, str]], None], path: Path
) -> tuple[int, bool]:
    """Replay one spool file unless another process holds it; (callbacks applied, paused by an
    outage: the rest is spooled again)."""
    fh = _hold(path)
    if fh is None:
        return 0, False
    with fh:
        if path.suffix == ".jsonl":  # callbacks arriving meanwhile go to a fresh spool
            taken = path.with_name(f"{kind}.{os.getpid()}-{uuid.uuid4().hex[:8]}.replaying")
            os.replace(path, taken)
            path = taken
        lines = fh.read().splitlines()
        applied = 0
        for number, line in enumerate(lines):
            try:
                apply(runtime, json.loads(line))
                applied += 1
            except Exception as exc:  # noqa: BLE001
                if is_outage(exc):
                    for rest in lines[number:]:
                        spool(runtime, kind, json.loads(rest))
                    log.warning("spool replay paused: %s still unavailable", type(exc).__name__)
                    path.unlink()
                    return applied, True
                log.error("spooled %s callback dropped: %s", kind, type(exc).__name__)
        path.unlink()
    return applied, False


def _hold(path: Path) -> IO[str] | None:
    """``path`` open under this process's exclusive lock; None when another process holds it (a
    writer appending, a live replayer) or it is gone (replayed meanwhile)."""
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115 - returned open, for the caller's with
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    if not _names(path, fh):
        fh.close()
        return None
    return fh


def busy_ussd_body() -> str:
    """A hop's answer when its request failed: a polite END, never an error the telco shows."""
    from menus.texts import text

    return "END " + text("en", "end.busy")


BUSY_RETRY = "Service busy, retry later\n"


def _cause(exc: BaseException) -> str:
    """What failed, for ``elimu_degraded_answers_total{cause}``: ``database``, ``redis``, ``outage``
    (a connection or timeout of either, not told apart) or ``error`` (a bug)."""
    if isinstance(exc, redis_errors.RedisError):
        return "redis"
    if isinstance(exc, sa_errors.SQLAlchemyError):
        return "database"
    return "outage" if is_outage(exc) else "error"


def count_answer(answer: str, exc: BaseException) -> None:
    """One answer given without its work, in ``elimu_degraded_answers_total`` by what failed (a USSD
    hop the handler caught too: ``gateway.ussd.hops``)."""
    DEGRADED_ANSWERS.labels(answer, _cause(exc)).inc()


def _log_failure(path: str, exc: Exception) -> None:
    if is_outage(exc):
        log.warning("degraded: %s on %s", type(exc).__name__, path)
    else:
        log.error("unhandled error on %s", path, exc_info=exc)


def failed_callback(path: str, exc: Exception) -> tuple[int, str, dict[str, str]]:
    """What a callback that is not spooled answers when its request failed (logged here): a USSD hop
    the busy END (200), any other a 503 with ``Retry-After``, so AT retries. Flask's error handler
    below and ``gateway.fastpath`` both answer with this."""
    _log_failure(path, exc)
    if path.startswith("/ussd/") and not path.endswith("/events"):
        count_answer("busy", exc)
        return 200, busy_ussd_body(), {}
    count_answer("retry_later", exc)
    return 503, BUSY_RETRY, {"Retry-After": str(RETRY_AFTER_S)}


def answer_failure(exc: Exception) -> Response:
    """The deliberate answer of a callback (or any path) whose request failed."""
    path = request.path
    if path in SPOOLED_PATHS:
        _log_failure(path, exc)
        try:
            from registry.models import utcnow

            kind = SPOOLED_PATHS[path]
            form = {key: value for key, value in request.form.items() if key in SPOOLED_FIELDS[kind]}
            form[RECEIVED_AT] = utcnow().isoformat()
            if "input" in form:  # what the caller typed never reaches the disk (``input_shape``)
                from .ussd.events import input_shape

                form["input"] = input_shape(form["input"]) or ""
            spool(current_app.extensions["elimu"], kind, form)
            count_answer("spooled", exc)
            return plain("OK (spooled)\n")
        except OSError:
            log.error("spool not writable; %s callback refused for retry", path)
        count_answer("retry_later", exc)
        return plain(BUSY_RETRY, 503, headers={"Retry-After": str(RETRY_AFTER_S)})
    if path.startswith(("/sms/", "/ussd/")):
        status, body, headers = failed_callback(path, exc)
        return plain(body, status, headers=headers)
    _log_failure(path, exc)
    count_answer("unavailable", exc)
    response = jsonify(error="Service Unavailable", reason="temporary failure, retry later")
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(Exception, answer_failure)

    @app.after_request
    def _replay_when_back(response: Response) -> Response:
        if (request.path in SPOOLED_PATHS and response.status_code == 200
                and not response.get_data().startswith(b"OK (spooled)")):
            runtime: Runtime = current_app.extensions["elimu"]
            if spool_dir(runtime).is_dir() and any(spool_dir(runtime).glob("*.jsonl")):
                try:
                    replay_spool(runtime)
                except Exception:  # noqa: BLE001 - replay is best effort; the spool stays
                    log.exception("spool replay failed")
        return response
