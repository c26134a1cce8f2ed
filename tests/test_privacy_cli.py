"""``elimu privacy export`` and ``elimu privacy erase``: a data subject's requests about a phone."""

import json
from collections import Counter
from datetime import date, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from gateway.ratelimit import Limit, RateLimiter
from gateway.ussd.sessions import SessionRecord, SessionStore
from registry.models import (
    AuditEvent,
    Guardian,
    GuardianLink,
    InboundMessage,
    Institution,
    Learner,
    MessageKind,
    MessageStatus,
    OneTimeCode,
    OutboundMessage,
    PhoneSetting,
    Priority,
    UssdSessionEvent,
    utcnow,
)
from registry.models.accounts import PinSession
from registry.services.audit import record_disclosure
from registry.services.retention import PURGED
from workers.inbound import RedisGate

PHONE = "+254712345678"
OTHER = "+254722111222"
PIN_HASH = "$argon2id$v=19$secret-hash"


def _seed(session, phone=PHONE, *, opted_out=True):
    """A guardian with an active account and everything the service records about its phone."""
    now = utcnow()
    school = Institution(code="NB7K", name="Kilimani Primary", county_code="047")
    learner = Learner(upi="ZQ6NFN", first_name="Jane", last_name="Kamau", date_of_birth=date(2016, 5, 14),
                      gender="F", grade="Grade 4", institution=school)
    guardian = Guardian(phone=phone, name="Mary Wanjiku Kamau", pin_hash=PIN_HASH, activated_at=now,
                        pin_failures=2, pin_locked_until=now + timedelta(minutes=5))
    session.add_all([learner, guardian])
    session.flush()
    session.add_all([
        GuardianLink(learner_id=learner.id, guardian_id=guardian.id, relationship_="mother", verified_at=now),
        PinSession(guardian_id=guardian.id, session_id="ATUid_1", verified_at=now),
        PhoneSetting(phone=phone, language="sw", opted_out=opted_out),
        OneTimeCode(phone=phone, purpose="activate", learner_id=learner.id, code_hash="scrypt$code-hash",
                    expires_at=now + timedelta(minutes=5)),
        _sent(phone, MessageKind.OTP, "Msimbo wa Elimu: ******"),
        _sent(phone, MessageKind.UPI, "Jane K.: UPI ZQ6NFN"),
        _sent(phone, MessageKind.REPLY, "a reply still queued", status=MessageStatus.QUEUED),
        InboundMessage(provider_id="at-1", sender=phone, text="UPI", command="upi", handled_at=now),
        UssdSessionEvent(session_id="ATUid_1", phone=phone, status="Success", hops_count=4, last_input="1*[8]*[4]"),
        UssdSessionEvent(session_id="ATUid_2", phone=OTHER, status="Success", hops_count=1, last_input="2"),
        _sent(OTHER, MessageKind.REPLY, "someone else's reply"),
    ])
    record_disclosure(session, phone=phone, learner_id=learner.id, action="upi_sent", channel="ussd",
                      reference="ATUid_1")


def _sent(phone, kind, body, status=MessageStatus.DELIVERED):
    return OutboundMessage(recipient=phone, kind=kind, body=body, priority=Priority.REPLY, status=status)


def _seed_redis(redis, phone=PHONE):
    """The phone's state in Redis, written by the classes that write it in service."""
    store = SessionStore(redis, digest_key=b"k" * 32)
    for session_id, owner in (("s-mine", phone), ("s-other", OTHER)):
        record = SessionRecord(session_id=session_id, phone=owner, state={"screen": "activate"}, touched=1.0)
        store.save(record, "set")
    for owner in (phone, OTHER):
        RateLimiter(redis).hit(owner, [Limit("ussd_hops_per_phone", 30, 60)])
        RedisGate(redis).prepare_inbound(Counter({owner: 1}))


def _invoke(runtime, monkeypatch, *args, input=None):
    from gateway import cli as cli_module

    monkeypatch.setattr(cli_module.Context, "runtime", property(lambda self: runtime))
    return CliRunner().invoke(cli_module.cli, ["privacy", *args], input=input, catch_exceptions=False)


def test_export_shows_everything_held_and_no_secret(runtime, monkeypatch):
    with runtime.db.transaction() as s:
        _seed(s)
    result = _invoke(runtime, monkeypatch, "export", "0712 345 678", "--json")
    assert result.exit_code == 0, result.output
    assert PIN_HASH not in result.output and "code-hash" not in result.output and "******" not in result.output
    record = json.loads(result.output)
    assert record["held"] and record["phone"] == PHONE
    assert record["guardian"]["pin_entered_at"] is not None  # where the PIN was last entered: when
    assert record["guardian"] | {"activated_at": None, "pin_locked_until": None, "pin_entered_at": None} == {
        "name": "Mary Wanjiku Kamau", "active": True, "pin_set": True, "activated_at": None, "pin_locked_until": None,
        "pin_entered_at": None}
    assert [(ln["upi"], ln["name"], ln["school"], ln["relationship"], ln["verified"]) for ln in record["learners"]] == [
        ("ZQ6NFN", "Jane K.", "NB7K Kilimani Primary", "mother", True)]
    assert record["settings"] == {"language": "sw", "opted_out": True}
    assert [c["purpose"] for c in record["one_time_codes"]] == ["activate"]
    assert [(m["kind"], m["body"]) for m in record["messages_sent"]] == [
        ("otp", None), ("upi", "Jane K.: UPI ZQ6NFN"), ("reply", "a reply still queued")]
    assert [(m["command"], m["text"]) for m in record["messages_received"]] == [("upi", "UPI")]
    assert [(e["session_id"], e["input_shape"]) for e in record["ussd_sessions"]] == [("ATUid_1", "1*[8]*[4]")]
    assert [(a["learner"], a["action"]) for a in record["audit"]] == [("ZQ6NFN", "upi_sent")]
    report = _invoke(runtime, monkeypatch, "export", PHONE).output
    for line in ("Guardian record (from the school's import): Mary Wanjiku Kamau; account active since",
                 "; PIN set, last entered ",
                 "ZQ6NFN  Jane K.  NB7K Kilimani Primary  mother  verified", "Settings: language sw; announcements "
                 "stopped (STOP)", "Messages sent to it (3):", '"Jane K.: UPI ZQ6NFN"', "(text not kept)",
                 "USSD sessions", "upi_sent"):
        assert line in report
    assert "someone else" not in report and "ATUid_2" not in report


def test_an_export_is_in_the_audit_trail_with_who_ran_it(runtime, monkeypatch):
    """The export shows the operator the learners a phone is linked to (UPI, name, school) and all
    else held about it: recorded like every disclosure, one row per learner it names."""
    with runtime.db.transaction() as s:
        _seed(s)
    monkeypatch.setenv("SUDO_USER", "wanjiru")
    assert _invoke(runtime, monkeypatch, "export", PHONE).exit_code == 0
    with runtime.db.session() as s:
        rows = s.execute(select(AuditEvent.phone, Learner.upi, AuditEvent.channel, AuditEvent.detail, AuditEvent.at)
                         .join(Learner, Learner.id == AuditEvent.learner_id)
                         .where(AuditEvent.action == "data_exported")).all()
    assert [row[:4] for row in rows] == [(PHONE, "ZQ6NFN", "cli", "subject access export by wanjiru")]
    assert rows[0].at is not None
    exported = json.loads(_invoke(runtime, monkeypatch, "export", PHONE, "--json").output)
    assert [a["action"] for a in exported["audit"]] == ["data_exported", "upi_sent"]  # the next export shows it


def test_an_export_of_a_phone_with_no_learner_is_audited_without_one(runtime, monkeypatch):
    with runtime.db.transaction() as s:
        s.add(PhoneSetting(phone=OTHER, language="sw"))
    assert _invoke(runtime, monkeypatch, "export", OTHER, "--json").exit_code == 0
    with runtime.db.session() as s:
        trail = [(e.phone, e.learner_id, e.action) for e in s.scalars(select(AuditEvent))]
    assert trail == [(OTHER, None, "data_exported")]


def test_a_phone_nothing_is_held_about(runtime, monkeypatch):
    exported = _invoke(runtime, monkeypatch, "export", "+44 7700 900123")
    assert (exported.exit_code, exported.output) == (0, "the service holds nothing about +447700900123\n")
    assert json.loads(_invoke(runtime, monkeypatch, "export", "+447700900123", "--json").output)["held"] is False
    erased = _invoke(runtime, monkeypatch, "erase", "+447700900123", "--yes")
    assert erased.exit_code == 1 and "holds nothing about +447700900123: nothing to erase" in erased.output
    assert _invoke(runtime, monkeypatch, "export", "not a phone").exit_code == 2
    with runtime.db.session() as s:
        assert s.scalars(select(AuditEvent)).all() == []  # nothing disclosed, no row naming the phone


def _assert_erased(db, redis, trail_before=(("upi_sent", False, "ussd"),)):
    with db.session() as s:
        guardian = s.scalar(select(Guardian).where(Guardian.phone == PHONE))
        assert guardian.name == "Mary Wanjiku Kamau" and not guardian.is_active  # the school's record stays
        assert (guardian.pin_hash, guardian.activated_at, guardian.pin_failures, guardian.pin_locked_until) == (
            None, None, 0, None)
        assert [link.verified_at for link in s.scalars(select(GuardianLink))] == [None]
        assert s.scalars(select(PinSession)).all() == []  # no session of the old PIN opens anything
        setting = s.get(PhoneSetting, PHONE)
        assert (setting.opted_out, setting.language) == (True, "en")  # STOP keeps working
        assert s.scalars(select(OneTimeCode)).all() == []
        bodies = {(m.recipient, m.kind, m.body) for m in s.scalars(select(OutboundMessage))}
        assert bodies == {(PHONE, MessageKind.OTP, PURGED), (PHONE, MessageKind.UPI, PURGED),
                          (PHONE, MessageKind.REPLY, PURGED), (OTHER, MessageKind.REPLY, "someone else's reply")}
        assert s.scalar(select(OutboundMessage.status).where(OutboundMessage.kind == MessageKind.REPLY,
                                                             OutboundMessage.recipient == PHONE)) == "failed"
        assert [m.text for m in s.scalars(select(InboundMessage))] == [PURGED]
        assert [e.session_id for e in s.scalars(select(UssdSessionEvent))] == ["ATUid_2"]
        trail = [(e.action, e.learner_id is None, e.channel) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert trail == [*trail_before, ("data_erased", True, "cli")]
        assert s.scalar(select(AuditEvent.detail).where(AuditEvent.action == "data_erased")) == (
            "account 1, verified_links 1, settings 1, one_time_codes 1, outbound_bodies 3, inbound_texts 1, "
            "session_events 1")
    left = sorted(k.decode() for k in redis.scan_iter("*"))
    assert left and all(OTHER in k or k == "ussd:s:s-other" for k in left), left


def test_erase_removes_what_the_service_created_and_keeps_the_schools_records(runtime, monkeypatch):
    with runtime.db.transaction() as s:
        _seed(s)
    _seed_redis(runtime.redis)
    result = _invoke(runtime, monkeypatch, "erase", "0712345678", "--yes")
    assert result.exit_code == 0, result.output
    for line in ("1 the account's activation and PIN", "1 verified mark(s)", "1 one-time code(s)",
                 "3 text(s) of messages sent to it", "1 USSD session event(s)", "4 Redis key(s)",
                 "(a wrong number: elimu registry unlink-guardian UPI MSISDN", "the STOP opt-out",
                 "1 message(s) still queued for it, not sent", "the audit trail (1 rows naming the phone)",
                 "erased (in the audit trail as data_erased)"):
        assert line in result.output
    _assert_erased(runtime.db, runtime.redis)
    again = _invoke(runtime, monkeypatch, "erase", PHONE, "--yes")
    assert again.exit_code == 0 and again.output.startswith(f"nothing left to erase about {PHONE}")
    with runtime.db.session() as s:
        assert len(s.scalars(select(AuditEvent).where(AuditEvent.action == "data_erased")).all()) == 1


def test_erase_asks_before_erasing(runtime, monkeypatch):
    with runtime.db.transaction() as s:
        _seed(s, opted_out=False)
    refused = _invoke(runtime, monkeypatch, "erase", PHONE, input="n\n")
    assert refused.exit_code == 1 and "Erase it? [y/N]" in refused.output and "Aborted" in refused.output
    with runtime.db.session() as s:
        assert s.scalar(select(Guardian.pin_hash)) == PIN_HASH and s.get(PhoneSetting, PHONE) is not None
    accepted = _invoke(runtime, monkeypatch, "erase", PHONE, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "1 its phone settings" in accepted.output and "STOP opt-out" not in accepted.output
    with runtime.db.session() as s:
        assert s.scalar(select(Guardian.pin_hash)) is None and s.get(PhoneSetting, PHONE) is None


@pytest.mark.postgres
@pytest.mark.redis
def test_erase_on_postgresql_and_redis(integration_runtime, monkeypatch):
    with integration_runtime.db.transaction() as s:
        _seed(s)
    _seed_redis(integration_runtime.redis)
    exported = json.loads(_invoke(integration_runtime, monkeypatch, "export", PHONE, "--json").output)
    assert exported["guardian"]["active"] and len(exported["messages_sent"]) == 3
    result = _invoke(integration_runtime, monkeypatch, "erase", PHONE, "--yes")
    assert result.exit_code == 0, result.output
    _assert_erased(integration_runtime.db, integration_runtime.redis,
                   (("upi_sent", False, "ussd"), ("data_exported", False, "cli")))


def _times(value, key=""):
    """Every time in an export record: the values of its ``at`` and ``*_at`` fields."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _times(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from _times(item, key)
    elif value is not None and (key == "at" or key.endswith("_at") or key.endswith("_until")):
        yield key, value


def test_the_export_gives_every_time_in_utc_with_its_zone(runtime, monkeypatch):
    """SQLite gives its times back without a zone: the export printed them so (`2026-12-05T19:09:46`),
    which a reader takes as local (EAT) time; each is UTC with its zone, as `elimu audit` prints."""
    with runtime.db.transaction() as s:
        _seed(s)
    record = json.loads(_invoke(runtime, monkeypatch, "export", PHONE, "--json").output)
    times = list(_times(record))
    assert {key for key, _ in times} >= {"activated_at", "pin_locked_until", "pin_entered_at", "verified_at",
                                         "created_at", "expires_at", "received_at", "handled_at", "at"}
    for key, text in times:
        assert datetime.fromisoformat(text).utcoffset() == timedelta(0), (key, text)
    report = _invoke(runtime, monkeypatch, "export", PHONE).output
    active = report.split("account active since ", 1)[1].split(";", 1)[0]
    assert active == record["guardian"]["activated_at"] and active.endswith("+00:00")


def test_the_export_withholds_the_learners_of_links_the_phone_never_verified(runtime, monkeypatch):
    """A school's import linked the phone to a second learner it never proved it knows (a mistyped
    or reassigned number): the report, which may reach whoever holds the phone, keeps that link and
    its dates but not the learner's UPI, name or school, nor the UPI in its audit rows; the export
    is audited for the verified learner only."""
    with runtime.db.transaction() as s:
        _seed(s)
        school = Institution(code="KS1L", name="Kisumu Lakeside", county_code="042")
        peter = Learner(upi="ZKA8MQ", first_name="Peter", last_name="Otieno", date_of_birth=date(2013, 9, 2),
                        gender="M", grade="Grade 7", institution=school)
        s.add(peter)
        s.flush()
        guardian = s.scalar(select(Guardian).where(Guardian.phone == PHONE))
        s.add(GuardianLink(learner_id=peter.id, guardian_id=guardian.id, relationship_="father"))
        record_disclosure(s, phone=PHONE, learner_id=peter.id, action="results_replied", channel="sms",
                          reference="9", detail="KCSE 2025 19301012002")

    record = json.loads(_invoke(runtime, monkeypatch, "export", PHONE, "--json").output)
    report = _invoke(runtime, monkeypatch, "export", PHONE).output

    for text in (json.dumps(record), report):
        assert "ZKA8MQ" not in text and "Peter" not in text and "Otieno" not in text and "Kisumu" not in text
    unverified = [ln for ln in record["learners"] if not ln["verified"]]
    assert [(ln["upi"], ln["name"], ln["school"], ln["relationship"], ln["withheld"]) for ln in unverified] == [
        (None, None, None, "father", "link not verified: learner details withheld")]
    assert unverified[0]["linked_at"] is not None and unverified[0]["verified_at"] is None
    assert [(a["learner"], a["action"]) for a in record["audit"]] == [
        ("withheld: not verified for this phone", "results_replied"), ("ZQ6NFN", "upi_sent")]
    assert "(link not verified: learner details withheld)  father  not verified  linked 20" in report
    assert "ZQ6NFN  Jane K.  NB7K Kilimani Primary  mother  verified " in report
    with runtime.db.session() as s:
        exported = s.scalars(select(Learner.upi).join(AuditEvent, AuditEvent.learner_id == Learner.id)
                             .where(AuditEvent.action == "data_exported")).all()
    assert exported == ["ZQ6NFN", "ZQ6NFN"]  # both exports, each naming only the verified learner


def test_erase_withdraws_every_message_still_queued_for_the_phone(runtime, monkeypatch):
    """Not only notices and UPIs: a results reply waiting out a retry (grades and index number), an
    announcement and a code still queued for the erased phone are not sent either, and the reply's
    disclosure is recorded as withdrawn; a message a worker holds (submitted) still goes, and
    another phone's messages are untouched."""
    from registry.outbox import queue_sms

    with runtime.db.transaction() as s:
        _seed(s)
        jane = s.scalar(select(Learner).where(Learner.upi == "ZQ6NFN"))
        waiting = queue_sms(s, PHONE, MessageKind.REPLY, "KCSE 2025 19301012001: Mean grade B+")
        record_disclosure(s, phone=PHONE, learner_id=jane.id, action="results_replied", channel="sms",
                          reference="7", detail="KCSE 2025 19301012001")
        queue_sms(s, PHONE, MessageKind.ANNOUNCEMENT, "School closes on Friday.")
        queue_sms(s, PHONE, MessageKind.OTP, "Elimu code: ******", secret="Elimu code: 123456")
        held = queue_sms(s, PHONE, MessageKind.REPLY, "KCSE 2025 19301012009: Mean grade A")
        held.status = MessageStatus.SUBMITTED
        queue_sms(s, OTHER, MessageKind.ANNOUNCEMENT, "School closes on Friday.")
        waiting_id = waiting.id

    result = _invoke(runtime, monkeypatch, "erase", PHONE, "--yes")

    assert result.exit_code == 0, result.output
    assert "4 message(s) still queued for it, not sent" in result.output  # with the seed's reply
    with runtime.db.session() as s:
        rows = {(m.recipient, m.kind, m.status) for m in s.scalars(select(OutboundMessage))
                if m.status in (MessageStatus.QUEUED, MessageStatus.SUBMITTED)}
        withdrawn = s.execute(select(AuditEvent.learner_id, AuditEvent.reference, AuditEvent.detail)
                              .where(AuditEvent.action == "disclosure_withdrawn")).all()
    assert rows == {(PHONE, MessageKind.REPLY, MessageStatus.SUBMITTED), (OTHER, MessageKind.ANNOUNCEMENT,
                                                                          MessageStatus.QUEUED)}
    assert [(ref, detail) for _, ref, detail in withdrawn] == [
        (str(waiting_id), "reply not sent: the phone's data was erased")]
    assert withdrawn[0][0] is not None
