"""Degraded mode: what each callback answers while PostgreSQL or Redis is down, and the spool.

- USSD hops: a well-formed ``END`` saying the service is busy (200).
- Inbound SMS: a deliberate 503 with ``Retry-After``, so AT retries (it does, every minute for 12 h).
- Delivery reports and USSD end-of-session events: accepted (200) and appended to a spool file in
  the instance folder; the spool is replayed by itself once the database answers again (after the
  next callback that succeeds, and by ``replay_spool`` from the workers' housekeeping).
- Anything else that crashes: never a 500 with a traceback. Callbacks get the answers above;
  other paths a JSON 503.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import redis.exceptions as redis_errors
from flask import Flask, Response, current_app, jsonify, request
from sqlalchemy import exc as sa_errors

from .plain import plain
from .runtime import Runtime

log = logging.getLogger(__name__)

RETRY_AFTER_S = 60
SPOOLED_PATHS = {
    "/sms/africastalking/delivery": "delivery",
    "/ussd/africastalking/events": "ussd-events",
}
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
    """Append one callback's form to ``instance/spool/<kind>.jsonl`` (safe across processes)."""
    folder = spool_dir(runtime)
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps(form, ensure_ascii=False) + "\n"
    with open(folder / f"{kind}.jsonl", "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


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
                     utcnow())

    def ussd_events(runtime: Runtime, form: dict[str, str]) -> None:
        from .ussd.events import event_fields, record_event

        fields = event_fields(form)
        if fields is not None:
            record_event(runtime.db, fields)

    return {"delivery": delivery, "ussd-events": ussd_events}


def replay_spool(runtime: Runtime) -> int:
    """Apply spooled callbacks; stop (keeping the rest) at the first outage. Returns how many were applied."""
    folder = spool_dir(runtime)
    if not folder.is_dir():
        return 0
    applied = 0
    with _replay_lock:
        for kind, apply in _appliers().items():
            path = folder / f"{kind}.jsonl"
            if not path.exists():
                continue
            claimed = folder / f"{kind}.{os.getpid()}.replaying"
            try:
                os.replace(path, claimed)  # atomic: one process replays a given batch
            except FileNotFoundError:
                continue
            lines = claimed.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines):
                try:
                    apply(runtime, json.loads(line))
                    applied += 1
                except Exception as exc:  # noqa: BLE001
                    if is_outage(exc):
                        for rest in lines[number:]:
                            spool(runtime, kind, json.loads(rest))
                        log.warning("spool replay paused: %s still unavailable", type(exc).__name__)
                        claimed.unlink()
                        return applied
                    log.error("spooled %s callback dropped: %s", kind, type(exc).__name__)
            claimed.unlink()
    if applied:
        log.info("replayed %d spooled callbacks", applied)
    return applied


def busy_ussd_body() -> str:
    """A hop's answer when its request failed: a polite END, never an error the telco shows."""
    from menus.texts import text

    return "END " + text("en", "end.busy")


BUSY_RETRY = "Service busy, retry later\n"


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
        return 200, busy_ussd_body(), {}
    return 503, BUSY_RETRY, {"Retry-After": str(RETRY_AFTER_S)}


def answer_failure(exc: Exception) -> Response:
    """The deliberate answer of a callback (or any path) whose request failed."""
    path = request.path
    if path in SPOOLED_PATHS:
        _log_failure(path, exc)
        try:
            form = request.form.to_dict()
            if "input" in form:  # what the caller typed never reaches the disk (``input_shape``)
                from .ussd.events import input_shape

                form["input"] = input_shape(form["input"]) or ""
            spool(current_app.extensions["elimu"], SPOOLED_PATHS[path], form)
            return plain("OK (spooled)\n")
        except OSError:
            log.error("spool not writable; %s callback refused for retry", path)
        return plain(BUSY_RETRY, 503, headers={"Retry-After": str(RETRY_AFTER_S)})
    if path.startswith(("/sms/", "/ussd/")):
        status, body, headers = failed_callback(path, exc)
        return plain(body, status, headers=headers)
    _log_failure(path, exc)
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
