"""The disclosure audit: every path by which learner data leaves the service, one test (or more) each.

House rules checked: no learner datum to a phone the registry has not verified (except results by
index number + one of the candidate's names, CONTRACT "SMS commands"); names masked (``Jane W.``);
OTPs and PINs only as salted hashes; every disclosure an audit row that holds no more than it needs.
"""

from __future__ import annotations

import io
import logging
import re
import zlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.app import create_app
from gateway.logs import JsonFormatter, RedactingFilter, RedactingFormatter
from menus.services import Purpose
from registry.models import (
    AuditEvent,
    InboundMessage,
    Institution,
    MessageKind,
    MessageStatus,
    OneTimeCode,
    OutboundMessage,
)
from registry.services.accounts import Keys, issue_otp
from registry.services.retention import PURGED, purge
from registry.services.subject_rights import erase
from registry.services.transfers import release
from tests.conftest import TEST_SECRET
from tests.sms.support import (
    Scripted,
    add_guardian,
    add_institution,
    add_learner,
    add_result,
    verify,
    work_queues,
)
from workers.backends.outbox import read_inbox
from workers.context import queues_of
from workers.queues import SendJob

PARENT = "+254712345678"
STRANGER = "+254733000222"


def _school_with_verified_parent(session):
    school = add_institution(session, code="WE4T", name="Kilimani Primary")
    jane = add_learner(session, school, first="Jane", last="Wanjiku", upi="QW7E9R")
    add_guardian(session, PARENT, jane, active=True)
    verify(session, PARENT, jane)
    return school, jane


# --- SMS notices ---------------------------------------------------------------------------------


def test_a_notice_still_queued_when_the_phone_is_erased_is_not_sent(sms_runtime):
    """A transfer notice names the learner and the school; it was queued while the phone was verified.
    Once the phone's data is erased (e.g. the number was given up and reassigned) it is no longer
    verified, so the notice (or a retry of it) must not reach it: it is withdrawn with the erasure."""
    runtime = sms_runtime
    runtime.db.dispatch = None  # the notice stays queued, as it does behind a busy queue or a retry interval
    with runtime.db.transaction() as s:
        _school_with_verified_parent(s)
        release(s, "QW7E9R")
    with runtime.db.transaction() as s:
        erased = erase(s, PARENT)
    assert erased.waiting_messages == 0
    with runtime.db.session() as s:
        notice = s.scalars(select(OutboundMessage).where(OutboundMessage.kind == MessageKind.NOTICE)).one()
        assert notice.status is MessageStatus.FAILED and notice.body == PURGED
        assert "erased" in (notice.failure_reason or "")
    queues_of(runtime).enqueue_sends([SendJob(notice.id, notice.priority.value)])  # a job already queued
    work_queues(runtime)
    with runtime.db.session() as s:
        assert s.get(OutboundMessage, notice.id).status is MessageStatus.FAILED
        assert s.scalars(select(AuditEvent.action).where(AuditEvent.action == "transfer_notice")).all()


# --- logs ----------------------------------------------------------------------------------------


def test_a_logged_database_error_carries_no_row_values(pg_database):
    """Statement parameters are hidden (``hide_parameters``), but PostgreSQL's own DETAIL line quotes
    the row or key that failed (``Key (upi)=(QW7E9R) already exists``, ``Failing row contains (...)``);
    a traceback logged by the degraded handler, the inbound drain or the worker must not carry it."""
    with pg_database.transaction() as s:
        school = add_institution(s)
        add_learner(s, school, first="Wambui", last="Kariuki", upi="QW7E9R")
    errors = []
    failing = (("QW7E9R", "Achieng", "Njeri"), ("ZX8C4V", "Achieng", None))  # a UPI taken; no last name
    for upi, first, last in failing:  # (the traceback quotes the failing call's line: values by name)
        try:
            with pg_database.transaction() as s:
                add_learner(s, s.get(Institution, school.id), first=first, last=last, upi=upi)
        except IntegrityError as exc:
            errors.append(exc)
    assert len(errors) == 2 and all("DETAIL" in str(exc) for exc in errors)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(RedactingFormatter("%(message)s"))
    log = logging.getLogger("tests.disclosure")
    log.addHandler(handler)
    try:
        for exc in errors:
            log.error("unhandled error on /sms/africastalking/inbound", exc_info=exc)
            log.error("job raised\n%s", str(exc))  # a traceback already formatted (the worker's own line)
            handler.setFormatter(JsonFormatter())
    finally:
        log.removeHandler(handler)
    logged = stream.getvalue()
    assert "DETAIL" in logged and "already exists" in logged  # what failed is still said
    for datum in ("QW7E9R", "ZX8C4V", "Achieng", "Njeri"):
        assert datum not in logged, logged


# --- SMS replies to inbound texts ------------------------------------------------------------------

LINKED = "+254722000111"  # linked by the school, never verified on USSD
DATA = ("Wambui", "Kariuki", "Njeri", "QW7E9R", "Kilimani", "Form 4", "2008", "ENG:")  # any learner datum
RESULT = "KCSE 2025 36611030002: Mean grade B+ (62 pts). ENG:B+, KIS:A-, MAT:A"


def _reply(runtime, client, sender: str, text: str, n: list[int]) -> str:
    """What the service texts back to ``text`` from ``sender``, through the inbound callback and a worker
    (the per-phone limits, tested elsewhere, start afresh: the queues are empty between texts)."""
    n[0] += 1
    runtime.redis.flushdb()
    answer = client.post("/sms/africastalking/inbound", data={"from": sender, "to": "22384", "text": text,
                                                               "id": f"disc-{n[0]}", "date": "2026-01-09 10:00:00"})
    assert answer.status_code == 200 and answer.get_data(as_text=True) == "OK\n"  # nothing echoed
    work_queues(runtime)
    with runtime.db.session() as s:
        return s.scalars(select(OutboundMessage.body).where(OutboundMessage.recipient == sender)
                         .order_by(OutboundMessage.id.desc()).limit(1)).one()


def test_every_sms_reply_keeps_the_disclosure_rules(sms_runtime):
    runtime = sms_runtime
    with runtime.db.transaction() as s:
        school = add_institution(s, code="WE4T", name="Kilimani Primary")
        wambui = add_learner(s, school, first="Wambui", last="Kariuki", upi="QW7E9R", grade="Form 4")
        add_guardian(s, PARENT, wambui, active=True)
        verify(s, PARENT, wambui)
        add_guardian(s, LINKED, wambui, active=True)
        add_result(s, index="36611030002", name="Wambui Njeri Kariuki", learner=wambui)
        add_result(s, exam="KCPE", year=2023, index="36611030009", name="Wambui Njeri Kariuki", learner=wambui,
                   mean="W", released=False)  # KCPE 2023 not yet released
    client = create_app(runtime=runtime).test_client()
    n = [0]

    def reply(sender: str, text: str) -> str:
        return _reply(runtime, client, sender, text, n)

    refusals = {  # every answer to a phone that may not see the learner: no datum at all
        "wrong name": reply(STRANGER, "KCSE 36611030002 Achieng"),
        "unknown index": reply(STRANGER, "KCSE 36611030003 Achieng"),
        "one letter": reply(STRANGER, "KCSE 36611030002 W"),
        "initials": reply(STRANGER, "KCSE 36611030002 W K"),
        "two letters": reply(STRANGER, "KCSE 36611030002 Wa"),
        "a right and a wrong name": reply(STRANGER, "KCSE 36611030002 Wambui Achieng"),
        "no name": reply(STRANGER, "KCSE 36611030002"),
        "no name, linked": reply(LINKED, "KCSE 36611030002"),
        "punctuation only": reply(STRANGER, "KCSE 36611030002 ."),
        "not yet released": reply(STRANGER, "KCPE 36611030009 Wambui"),
        "not yet released, wrong name": reply(LINKED, "KCPE 36611030009 Achieng"),
        "UPI, linked": reply(LINKED, "UPI"),
        "UPI, stranger": reply(STRANGER, "UPI"),
        "HELP": reply(STRANGER, "HELP"),
        "STOP": reply(LINKED, "STOP"),
        "unknown text": reply(LINKED, "36611030002 Wambui"),
    }
    for case, text in refusals.items():
        assert not [d for d in DATA if d in text], (case, text)
    # an unknown number and a wrong name get the same answer: no reply tells that a number is real
    assert refusals["unknown index"] == refusals["wrong name"].replace("36611030002", "36611030003")
    assert refusals["not yet released"] == refusals["not yet released, wrong name"]
    with runtime.db.session() as s:  # nothing disclosed; each name refused in the trail, without learner or name
        refused = [(e.phone, e.action, e.learner_id, e.detail) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    miss = (STRANGER, "results_miss", None, "KCSE 2025 36611030002")
    unnamed = ("results_refused", None, "KCSE 2025 36611030002")
    assert refused == [miss, (STRANGER, "results_miss", None, "KCSE - 36611030003"), miss, miss, miss, miss,
                       (STRANGER, *unnamed), (LINKED, *unnamed), (STRANGER, *unnamed),
                       (LINKED, "results_miss", None, "KCPE 2023 36611030009")]

    assert reply(STRANGER, "KCSE 36611030002 wambui") == RESULT  # index + one name: the contract's rule
    assert reply(STRANGER, "KCSE 36611030002 Kariuki Njeri") == RESULT
    assert reply(PARENT, "KCSE 36611030002") == RESULT  # a verified phone may leave the name out
    upi = reply(PARENT, "UPI")
    assert upi == "UPI: Wambui K. QW7E9R"  # the name masked
    with runtime.db.session() as s:
        trail = [(e.phone, e.action, e.learner_id is not None, e.detail)
                 for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))][len(refused):]
    results = "KCSE 2025 36611030002"  # the detail: which result, no name, no grade
    assert trail == [(STRANGER, "results_replied", True, results), (STRANGER, "results_replied", True, results),
                     (PARENT, "results_replied", True, results), (PARENT, "upi_sent", True, None)]

    metrics = client.get("/metrics").get_data(as_text=True)  # labels: screens, kinds, statuses, never data
    assert "elimu_inbound_commands" in metrics
    # each datum as a value of its own, not inside a longer number (a histogram's sum may hold "2008")
    assert not [d for d in (*DATA, "36611030002", PARENT[1:], STRANGER[1:], LINKED[1:])
                if re.search(r"(?<![0-9A-Za-z.])" + re.escape(d) + r"(?![0-9A-Za-z])", metrics)]

    with runtime.db.transaction() as s:  # storage limitation: the texts go, the rows and the trail stay
        purge(s, timedelta(days=-1))
    with runtime.db.session() as s:
        assert set(s.scalars(select(OutboundMessage.body))) == {PURGED}
        assert set(s.scalars(select(InboundMessage.text))) == {PURGED}
        assert len(s.scalars(select(AuditEvent)).all()) == len(refused) + 4


def test_callbacks_refusing_a_field_echo_nothing_of_it(client):
    """A 400 says which field is wrong, never what it held."""
    bad = "Wambui QW7E9R 36611030002"
    for path, form in (
        ("/sms/africastalking/inbound", {"from": bad, "id": "x1", "text": "KCSE 36611030002 Wambui"}),
        ("/sms/africastalking/inbound", {"from": PARENT, "text": "KCSE 36611030002 Wambui"}),
        ("/sms/africastalking/delivery", {"id": "", "status": "Success", "phoneNumber": PARENT}),
        ("/sms/africastalking/optout", {"phoneNumber": bad}),
    ):
        answer = client.post(path, data=form)
        body = answer.get_data(as_text=True)
        assert answer.status_code == 400 and body.strip(), (path, body)
        assert not [d for d in ("Wambui", "QW7E9R", "36611030002", PARENT[4:]) if d in body], (path, body)


# --- one-time codes ----------------------------------------------------------------------------------


def test_a_code_sms_carries_the_code_only_and_the_database_keeps_it_salted_and_hashed(sms_runtime):
    runtime = sms_runtime
    keys = Keys.from_secret(TEST_SECRET)
    with runtime.db.transaction() as s:
        _school_with_verified_parent(s)
    for minutes_ago in (5, 0):
        with runtime.db.transaction() as s:
            issue_otp(s, keys, PARENT, Purpose.UPI, datetime.now(UTC) - timedelta(minutes=minutes_ago))
    work_queues(runtime)
    sent = [m["text"] for m in read_inbox(runtime.redis, PARENT)]  # what the handset got (development inbox)
    codes = [re.search(r"\b\d{6}\b", text).group(0) for text in sent]
    assert len(codes) == 2 and all(not [d for d in DATA if d in text] for text in sent), sent
    with runtime.db.session() as s:
        bodies = list(s.scalars(select(OutboundMessage.body)))
        hashes = list(s.scalars(select(OneTimeCode.code_hash)))
    assert not [c for c in codes if any(c in stored for stored in bodies + hashes)]
    assert len(hashes) == 2 and all(any(keys.otp.verify(h, c) for c in codes) for h in hashes)
    assert len({h.split("$")[1] for h in hashes}) == 2  # a salt of its own each


# --- RQ jobs and what Redis keeps ------------------------------------------------------------------


def test_redis_keeps_no_message_text_of_a_send_that_failed(at_runtime, fake_at, quick_retries):
    """A send job carries the message id only (an OTP's clear code aside, tested in
    ``tests/workers/test_pipeline.py``): after a notice's every attempt failed, nothing in Redis (queues,
    registries, job hashes and their pickled arguments) holds its text, the learner's data or the phone."""
    runtime = at_runtime
    fake_at.then(*[Scripted(status=500, body="Internal Server Error", content_type="text/plain")] * 10)
    with runtime.db.transaction() as s:
        _school_with_verified_parent(s)
        release(s, "QW7E9R")  # "Elimu: Jane W. has been released by Kilimani Primary ..."
    redis = runtime.redis
    waiting = b" ".join(_values(redis, key) for key in redis.scan_iter("*"))  # the job queued, not yet run
    assert b"send_message" in waiting
    work_queues(runtime)
    with runtime.db.session() as s:
        notice = s.scalars(select(OutboundMessage).where(OutboundMessage.kind == MessageKind.NOTICE)).one()
        assert notice.status is MessageStatus.FAILED and notice.attempts == 3 and "Jane W." in notice.body
    kept = waiting + b" ".join(_values(redis, key) for key in redis.scan_iter("*"))
    for datum in (b"Jane", b"Wanjiku", b"QW7E9R", b"Kilimani", PARENT[1:].encode()):
        assert datum not in kept, datum


def _values(redis, key: bytes) -> bytes:
    """Everything a Redis key holds, a job's compressed pickle opened."""
    kind = redis.type(key)
    if kind == b"hash":
        values = list(redis.hvals(key))
        data = redis.hget(key, "data")
        return b" ".join(values + ([zlib.decompress(data)] if data else []))
    if kind == b"list":
        return b" ".join(redis.lrange(key, 0, -1))
    if kind == b"zset":
        return b" ".join(redis.zrange(key, 0, -1))
    if kind == b"set":
        return b" ".join(redis.smembers(key))
    return redis.get(key) or b"" if kind == b"string" else b""
