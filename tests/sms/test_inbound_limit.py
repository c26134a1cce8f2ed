"""Inbound commands per phone per minute (hardening): a flooding phone gets one SMS telling it to slow down,
then nothing until the minute is over; other phones are not affected. STOP/SITISHA and START/ANZA are
always applied and each acknowledged by one SMS (CONTRACT "SMS commands"); they still count towards the
limit of other commands.

Each flood is sent before the worker runs, so it is answered in one batch, in one minute window."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from prometheus_client import REGISTRY

from gateway.app import create_app
from gateway.ratelimit import INBOUND_PER_MINUTE
from registry.models import PhoneSetting
from tests.sms.support import outbox_rows, work_queues
from tests.sms.test_inbound import URL, form, inbound_rows

FLOODER = "+254712345600"
NEIGHBOUR = "+254712345601"


@pytest.fixture
def client(sms_runtime):
    return create_app(runtime=sms_runtime).test_client()


def _send(client, phone: str, n: int, text: str = "HELP") -> None:
    response = client.post("/sms/africastalking/inbound", data={
        "from": phone, "to": "22384", "text": text, "date": "2026-01-09 10:00:00", "id": f"flood-{phone}-{n}"})
    assert response.status_code == 200


def test_a_flooding_phone_is_told_once_then_ignored_for_the_minute(client, sms_runtime):
    extra = 4
    for n in range(INBOUND_PER_MINUTE.count + extra):
        _send(client, FLOODER, n)
    _send(client, NEIGHBOUR, 0)
    work_queues(sms_runtime)
    rows = outbox_rows(sms_runtime)
    to_flooder = [r.body for r in rows if r.recipient == FLOODER]
    assert len(to_flooder) == INBOUND_PER_MINUTE.count + 1  # the allowed answers and one notice
    assert sum("Too many messages" in body for body in to_flooder) == 1
    assert Counter(r.recipient for r in rows)[NEIGHBOUR] == 1


def test_the_notice_speaks_the_keyword_language(client, sms_runtime):
    for n in range(INBOUND_PER_MINUTE.count + 1):
        _send(client, FLOODER, n, text="MSAADA")
    work_queues(sms_runtime)
    bodies = [r.body for r in outbox_rows(sms_runtime) if r.recipient == FLOODER]
    assert any("Jumbe nyingi mno" in body for body in bodies)


PHONE = "+254799000040"
FULL = ["HELP"] * INBOUND_PER_MINUTE.count  # a minute's worth: the next message is over the limit
TOO_MANY = "Too many messages"
STOPPED = {"en": "You will no longer get announcements", "sw": "Hutapokea tena matangazo"}
STARTED = {"en": "You will get Elimu announcements again", "sw": "Utapokea matangazo"}

_ids = itertools.count()


def _texts(client, *texts: str) -> None:
    for text in texts:
        response = client.post(URL, data=form(id=f"limits-{next(_ids)}", text=text, **{"from": PHONE}))
        assert response.status_code == 200


def _replies(runtime) -> list[str]:
    return [row.body for row in outbox_rows(runtime) if row.recipient == PHONE]


def _opted_out(runtime) -> bool | None:
    with runtime.db.session() as session:
        setting = session.get(PhoneSetting, PHONE)
        return None if setting is None else setting.opted_out


def _commands(runtime) -> list[str]:
    return [row.command for row in inbound_rows(runtime) if row.sender == PHONE]


def _counted(command: str) -> float:
    return REGISTRY.get_sample_value("elimu_inbound_commands_total", {"command": command}) or 0.0


@pytest.mark.parametrize(("stop", "start", "language"), [("STOP", "START", "en"), ("SITISHA", "ANZA", "sw")])
def test_a_flooding_phone_can_opt_out_and_back_in(client, sms_runtime, stop, start, language):
    stops_before, limited_before = _counted("stop"), _counted("limited")
    _texts(client, *FULL, stop)
    work_queues(sms_runtime)
    assert _opted_out(sms_runtime) is True
    assert _replies(sms_runtime)[-1].startswith(STOPPED[language])
    assert not any(TOO_MANY in body for body in _replies(sms_runtime))
    assert _commands(sms_runtime) == ["help"] * len(FULL) + ["stop"]
    assert (_counted("stop"), _counted("limited")) == (stops_before + 1, limited_before)

    _texts(client, stop)  # again, the same minute: still acknowledged, not dropped
    work_queues(sms_runtime)
    assert _replies(sms_runtime)[-1].startswith(STOPPED[language])
    assert _commands(sms_runtime)[-1] == "stop"

    _texts(client, start)
    work_queues(sms_runtime)
    assert _opted_out(sms_runtime) is False
    assert _replies(sms_runtime)[-1].startswith(STARTED[language])
    assert _commands(sms_runtime)[-1] == "start"
    assert len(_replies(sms_runtime)) == len(FULL) + 3  # one acknowledgement each


def test_a_help_flood_still_gets_one_notice_around_a_stop(client, sms_runtime):
    _texts(client, *FULL, "HELP", "STOP", "HELP", "HELP")
    work_queues(sms_runtime)
    replies = _replies(sms_runtime)
    assert len(replies) == len(FULL) + 2  # the allowed answers, one notice, the acknowledgement
    assert sum(TOO_MANY in body for body in replies) == 1
    assert sum(body.startswith(STOPPED["en"]) for body in replies) == 1
    assert _commands(sms_runtime) == ["help"] * len(FULL) + ["limited", "stop", "limited", "limited"]
    assert _opted_out(sms_runtime) is True


def test_opt_outs_count_towards_the_limit_of_other_commands(client, sms_runtime):
    _texts(client, *["STOP", "START"] * (INBOUND_PER_MINUTE.count // 2), "STOP", "HELP")
    work_queues(sms_runtime)
    replies = _replies(sms_runtime)
    assert len(replies) == INBOUND_PER_MINUTE.count + 2  # every STOP/START acknowledged, then the notice
    assert TOO_MANY in replies[-1]
    assert _commands(sms_runtime)[-2:] == ["stop", "limited"]
    assert _opted_out(sms_runtime) is True


@pytest.mark.parametrize("failure", ["outage", "bug"])
def test_a_batch_redone_after_its_transaction_failed_counts_each_message_once(client, sms_runtime, monkeypatch,
                                                                              failure):
    """A minute's worth of texts, whose batch fails once: after an outage it is redone whole, after a
    bug one message at a time. Either way each text is counted once and answered: none refused as
    over the limit, no slow-down notice."""
    from sqlalchemy.exc import OperationalError

    from workers import inbound as inbound_module

    real, calls = inbound_module.respond, []

    def fails_once(session, **kwargs):
        calls.append(kwargs["message_id"])
        if len(calls) == 1:
            if failure == "outage":
                raise OperationalError("INSERT INTO outbound_messages", {}, Exception("server closed the connection"))
            raise RuntimeError("a bug")
        return real(session, **kwargs)

    monkeypatch.setattr(inbound_module, "respond", fails_once)
    _texts(client, *FULL)
    work_queues(sms_runtime)
    assert len(calls) == len(FULL) + 1  # the failed try, then each message once
    assert _commands(sms_runtime) == ["help"] * len(FULL)
    assert not any(TOO_MANY in body for body in _replies(sms_runtime))
    assert len(_replies(sms_runtime)) == len(FULL)


def test_an_index_of_the_wrong_length_is_answered_each_time_and_counts_no_results_query(client, sms_runtime):
    """Like any malformed results request (no number, a letter in it): answered every time, told the
    count, and kept off the hourly results-query count and the once-per-10-minutes help slot."""
    _texts(client, "KCSE 3661103002 Wanjiku", "KCSE 3661103002 Wanjiku", "MATOKEO KCPE 366110300021 Otieno")
    work_queues(sms_runtime)
    assert _replies(sms_runtime) == [
        "A KCSE index number has 11 digits; you sent 10. Send: KCSE <11-digit index> <name>"] * 2 + [
        "Nambari ya mtihani ya KCPE ina tarakimu 11; ulituma 12. Tuma: KCPE <nambari ya tarakimu 11> <jina>"]
    assert _commands(sms_runtime) == ["results"] * 3
    assert list(sms_runtime.redis.scan_iter("elimu:sms:results-limit:*")) == []
    assert list(sms_runtime.redis.scan_iter("elimu:sms:unknown-reply:*")) == []


@pytest.mark.parametrize(("per_minute", "answered"), [(2, 2), (0, 12)])
def test_the_minute_limit_is_a_setting(tmp_path, sqlite_database, fake_redis, per_minute, answered):
    """ELIMU_SMS_PER_MINUTE sets the minute's answers per phone (a shared school phone, a test bench);
    0 answers every message."""
    from tests.sms.support import job_runtime

    with job_runtime(tmp_path, sqlite_database, fake_redis, sms_per_minute=per_minute) as runtime:
        client = create_app(runtime=runtime).test_client()
        for n in range(12):
            _send(client, FLOODER, n)
        work_queues(runtime)
        bodies = [r.body for r in outbox_rows(runtime) if r.recipient == FLOODER]
    assert sum(TOO_MANY not in body for body in bodies) == answered
    assert sum(TOO_MANY in body for body in bodies) == (1 if per_minute else 0)


@pytest.mark.parametrize(("per_hour", "graded"), [(3, 3), (0, 14)])
def test_the_hourly_results_limit_is_a_setting(tmp_path, sqlite_database, fake_redis, per_hour, graded):
    """ELIMU_RESULTS_PER_HOUR sets the results queries answered per phone an hour; 0 answers all
    (the name check's daily limit on misses still holds: these queries all name the candidate)."""
    from tests.sms.support import add_result, job_runtime

    with job_runtime(tmp_path, sqlite_database, fake_redis, sms_per_minute=0,
                     results_per_hour=per_hour) as runtime:
        with runtime.db.transaction() as session:
            add_result(session, name="Jane Wambui Wanjiku")
        client = create_app(runtime=runtime).test_client()
        for n in range(14):
            _send(client, FLOODER, n, text="KCSE 36611030002 Wanjiku")
        work_queues(runtime)
        bodies = [r.body for r in outbox_rows(runtime) if r.recipient == FLOODER]
    assert len(bodies) == 14
    assert sum(body.startswith("Too many results requests") for body in bodies) == 14 - graded
