"""What an operator watches on results day moves when its event happens (docs/operations.md,
"Results day dashboard"): each test makes the event and reads the counter before and after.

Counters are read from this process's registry (the web's and the workers' alike: the tests run
both in one process, as the embedded mode does)."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from gateway.ratelimit import INBOUND_PER_MINUTE, Limit
from registry.services.sms_commands import parse
from tests.sms.support import work_queues
from workers.inbound import RedisGate, _answerable

_ids = itertools.count()


def value(name: str, **labels: str) -> float:
    """A sample of this process's metrics (0 before it was first counted)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def text_in(client, phone: str, text: str) -> None:
    response = client.post("/sms/africastalking/inbound", data={
        "from": phone, "to": "22384", "text": text, "date": "2026-01-09 10:00:00", "id": f"rdm-{next(_ids)}"})
    assert response.status_code == 200


# --- limits the workers apply ------------------------------------------------------------------


def test_texts_over_the_minute_limit_are_counted_as_refused(client, runtime):
    """elimu_rate_limited_total{limit="sms_inbound_per_phone"} was named in the runbook but never
    moved: the drains judge the limit in their own gate, which did not count. STOP over the limit
    is still applied and answered, so it is not counted."""
    phone = "+254712000301"
    before = value("elimu_rate_limited_total", limit="sms_inbound_per_phone")
    for _ in range(INBOUND_PER_MINUTE.count + 3):
        text_in(client, phone, "HELP")
    text_in(client, phone, "STOP")
    work_queues(runtime)
    assert value("elimu_rate_limited_total", limit="sms_inbound_per_phone") - before == 3


def test_results_queries_over_the_hourly_limit_are_counted_as_refused(fake_redis):
    phone = "+254712000302"
    gate = RedisGate(fake_redis, results_limit=Limit("results_queries_per_phone", 2, 3600))
    before = value("elimu_rate_limited_total", limit="results_queries_per_phone")
    assert [gate.results_allowed(phone) for _ in range(4)] == [True, True, False, False]
    assert value("elimu_rate_limited_total", limit="results_queries_per_phone") - before == 2


def test_the_minute_gate_counts_each_refused_text_once(fake_redis):
    phone = "+254712000303"
    gate = RedisGate(fake_redis, inbound_limit=Limit("sms_inbound_per_phone", 2, 60))
    gate.prepare_inbound(Counter({phone: 5}))
    before = value("elimu_rate_limited_total", limit="sms_inbound_per_phone")
    answered = [_answerable(gate, phone, parse(text)) for text in ("HELP", "UPI", "HELP", "START", "UPI")]
    assert answered == [True, True, False, True, False]
    assert value("elimu_rate_limited_total", limit="sms_inbound_per_phone") - before == 2


# --- the audit trail's refusals: results name check, PIN choices -------------------------------


def test_results_misses_and_refusals_are_counted_when_their_batch_commits(client, runtime):
    """A name that matches no candidate is a ``results_miss`` row, a query no name was checked for
    a ``results_refused`` one: elimu_audit_events_total{action} counts each once it is committed."""
    actions = ("results_miss", "results_refused", "results_replied")
    before = {action: value("elimu_audit_events_total", action=action) for action in actions}
    text_in(client, "+254712000304", "KCSE 36611030002 Wanjiku")
    text_in(client, "+254712000304", "KCSE 36611030003 Achieng")
    text_in(client, "+254712000305", "KCSE 36611030002")
    work_queues(runtime)
    moved = {action: value("elimu_audit_events_total", action=action) - before[action] for action in actions}
    assert moved == {"results_miss": 2, "results_refused": 1, "results_replied": 0}


def test_pin_choices_and_the_daily_cap_are_counted(runtime):
    from registry.models import utcnow
    from registry.services.accounts import PIN_CHOICES_PER_DAY, judge_chosen_pin

    phone = "+254712000306"
    before = {a: value("elimu_audit_events_total", action=a) for a in ("pin_chosen", "pin_choice_limit")}
    for _ in range(PIN_CHOICES_PER_DAY + 2):
        with runtime.db.transaction() as session:
            judge_chosen_pin(session, phone, "4826", utcnow())
    assert value("elimu_audit_events_total", action="pin_chosen") - before["pin_chosen"] == PIN_CHOICES_PER_DAY
    assert value("elimu_audit_events_total", action="pin_choice_limit") - before["pin_choice_limit"] == 2


def test_a_row_rolled_back_is_not_counted(runtime):
    from registry.models import utcnow
    from registry.services.audit import record_failed_check

    before = value("elimu_audit_events_total", action="activation_miss")
    try:
        with runtime.db.transaction() as session:
            record_failed_check(session, phone="+254712000307", action="activation_miss", channel="ussd", at=utcnow())
            session.flush()
            raise RuntimeError("the hop failed after its row was written")
    except RuntimeError:
        pass
    assert value("elimu_audit_events_total", action="activation_miss") == before
    with runtime.db.transaction() as session:
        record_failed_check(session, phone="+254712000307", action="activation_miss", channel="ussd", at=utcnow())
    assert value("elimu_audit_events_total", action="activation_miss") == before + 1


# --- degraded mode -------------------------------------------------------------------------------


def test_callbacks_answered_while_the_database_is_down_are_counted_by_answer_and_cause(runtime):
    from gateway.app import create_app
    from registry.db import Database

    down = Database("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    runtime.db = down
    client = create_app(runtime=runtime).test_client()
    before = {answer: value("elimu_degraded_answers_total", answer=answer, cause="database")
              for answer in ("retry_later", "spooled")}
    inbound = client.post("/sms/africastalking/inbound", data={
        "from": "+254712000308", "to": "22384", "text": "HELP", "id": "rdm-down-1", "date": "2026-01-09 10:00:00"})
    delivery = client.post("/sms/africastalking/delivery", data={
        "id": "ATXid_down", "status": "Success", "phoneNumber": "+254712000308", "networkCode": "63902"})
    assert (inbound.status_code, delivery.status_code) == (503, 200)
    moved = {answer: value("elimu_degraded_answers_total", answer=answer, cause="database") - before[answer]
             for answer in before}
    assert moved == {"retry_later": 1, "spooled": 1}
    down.dispose()


def test_a_callback_that_crashes_is_counted_as_an_error(client, monkeypatch):
    def crash(*_args, **_kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr("gateway.sms.routes.receive", crash)
    before = value("elimu_degraded_answers_total", answer="retry_later", cause="error")
    response = client.post("/sms/africastalking/inbound", data={
        "from": "+254712000309", "to": "22384", "text": "HELP", "id": "rdm-crash-1", "date": "2026-01-09 10:00:00"})
    assert response.status_code == 503
    assert value("elimu_degraded_answers_total", answer="retry_later", cause="error") - before == 1


# --- what waits, read at scrape time -------------------------------------------------------------


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}


def _backdate_job(redis, job_id: str, seconds: float) -> None:
    from datetime import UTC, datetime, timedelta

    when = datetime.now(UTC) - timedelta(seconds=seconds)
    redis.hset(f"rq:job:{job_id}", "enqueued_at", when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def test_the_age_of_each_queues_oldest_job_is_shown(client, runtime):
    from rq import Queue

    queue = Queue("sms-reply", connection=runtime.redis)
    gone, first, second = (queue.enqueue(print, n) for n in range(3))
    _backdate_job(runtime.redis, first.id, 600)
    _backdate_job(runtime.redis, second.id, 30)
    runtime.redis.delete(f"rq:job:{gone.id}")  # batched away by a worker: its id is left at the head
    samples = scrape(client)
    age = samples[("elimu_queue_oldest_seconds", (("queue", "sms-reply"),))]
    assert 600 <= age < 3600
    assert samples[("elimu_queue_oldest_seconds", (("queue", "sms-bulk"),))] == 0
    assert samples[("elimu_queue_depth", (("queue", "sms-reply"),))] == 3


def _lags(database, client, runtime) -> dict[str, float]:
    from datetime import timedelta

    from registry.models import InboundMessage, MessageKind, MessageStatus, OutboundMessage, Priority, utcnow

    now = utcnow()
    samples = scrape(client)
    assert (samples[("elimu_outbox_lag_seconds", ())], samples[("elimu_inbound_lag_seconds", ())]) == (0, 0)
    with database.transaction() as session:
        for due, status in ((300, MessageStatus.QUEUED), (900, MessageStatus.SUBMITTED), (-60, MessageStatus.QUEUED)):
            session.add(OutboundMessage(recipient="+254712000310", kind=MessageKind.REPLY, body="x", priority=Priority.REPLY,
                                        status=status, next_attempt_at=now - timedelta(seconds=due)))
        session.add(InboundMessage(provider_id="rdm-lag-1", sender="+254712000310", text="HELP",
                                   created_at=now - timedelta(seconds=120)))
        session.add(InboundMessage(provider_id="rdm-lag-2", sender="+254712000310", text="HELP",
                                   created_at=now - timedelta(seconds=3000), handled_at=now))
    runtime.redis.rpush("elimu:sms:inbound:pending", 1, 2, 3)
    samples = scrape(client)
    return {"outbox": samples[("elimu_outbox_lag_seconds", ())], "inbound": samples[("elimu_inbound_lag_seconds", ())],
            "waiting": samples[("elimu_inbound_waiting", ())],
            "up": samples[("elimu_up", (("dependency", "database"),))] + samples[("elimu_up", (("dependency", "redis"),))]}


def test_the_outbox_and_inbound_lags_are_the_oldest_due_and_unanswered(client, runtime):
    """A message due 5 minutes ago still queued: 300 s late (one handed to AT, one due later, do not
    count); an inbound text 2 minutes old unanswered: 120 s (one answered does not count)."""
    lags = _lags(runtime.db, client, runtime)
    assert 300 <= lags["outbox"] < 3600 and 120 <= lags["inbound"] < 3000
    assert (lags["waiting"], lags["up"]) == (3, 2)


def test_the_lags_on_postgresql(integration_runtime):
    """PostgreSQL gives its times with their zone, SQLite without: both read as UTC."""
    from gateway.app import create_app

    client = create_app(runtime=integration_runtime).test_client()
    lags = _lags(integration_runtime.db, client, integration_runtime)
    assert 300 <= lags["outbox"] < 3600 and 120 <= lags["inbound"] < 3000
    assert (lags["waiting"], lags["up"]) == (3, 2)


def test_metrics_answer_with_redis_and_the_database_down(runtime):
    from gateway.app import create_app
    from registry.db import Database
    from tests.conftest import unreachable_redis

    runtime.redis = unreachable_redis()
    runtime.db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    samples = scrape(create_app(runtime=runtime).test_client())
    assert samples[("elimu_up", (("dependency", "redis"),))] == 0
    assert samples[("elimu_up", (("dependency", "database"),))] == 0
    assert not any(name == "elimu_queue_depth" for name, _ in samples)
    runtime.db.dispose()


def test_the_lags_are_read_from_their_partial_indexes_on_postgresql(pg_database):
    """Each scrape reads two index entries, however large the outbox: the plan, generic or not, reads
    ix_outbound_messages_due and ix_inbound_messages_unhandled (never the tables)."""
    from sqlalchemy import text

    from gateway.metrics import lag_statement

    with pg_database.engine.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))
        sql = str(lag_statement().compile(connection))
        assert "%(" not in sql  # nothing bound: the generic plan is the same
        plan = "\n".join(row[0] for row in connection.execute(text(f"EXPLAIN {sql}")))
    assert "ix_outbound_messages_due" in plan and "ix_inbound_messages_unhandled" in plan, plan
    assert "Seq Scan" not in plan, plan


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_under_gunicorn_every_scrape_adds_up_the_processes_and_reads_what_waits(pg_database, real_redis, redis_url,
                                                                                tmp_path):
    """gunicorn.conf.py's multiprocess metrics, two processes: the activation misses counted by
    whichever process answered are summed in every scrape, and the gauges read at scrape time
    (no multiprocess mode to choose: nothing is written to the metrics files) appear once."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.test_scale_out import PARENTS, _env, _hop, _seed, web_server

    _seed(pg_database)
    real_redis.rpush("elimu:sms:inbound:pending", 7)
    with web_server(_env(pg_database.url, redis_url, tmp_path), 2, tmp_path / "metrics") as url:
        def misses(n: int) -> None:  # two sessions of one phone, each with a date of birth that is not hers
            for attempt in range(2):
                session, phone = f"rdm-{n}-{attempt}", PARENTS[n]
                for text in ("", "1", f"1*SC{n}", f"1*SC{n}*0202200{attempt}"):
                    answer = _hop(url, session, phone, text)
                assert answer.startswith("CON ") and "not match" in answer.lower(), answer

        with ThreadPoolExecutor(len(PARENTS)) as pool:  # at once, so that both processes answer some
            list(pool.map(misses, range(len(PARENTS))))
            bodies = list(pool.map(lambda _: requests.get(f"{url}/metrics", timeout=10).text, range(8)))
    for body in bodies:
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(body) for s in family.samples}
        assert samples[("elimu_audit_events_total", (("action", "activation_miss"),))] == 2 * len(PARENTS)
        assert samples[("elimu_up", (("dependency", "database"),))] == 1
        assert samples[("elimu_up", (("dependency", "redis"),))] == 1
        assert samples[("elimu_inbound_waiting", ())] == 1
        assert body.count("# TYPE elimu_queue_oldest_seconds gauge") == 1


def test_activation_refused_by_the_daily_misses_limit_is_counted(runtime):
    """10 activation misses in a day stop activation from the phone; each refusal after them is
    elimu_rate_limited_total{limit="activation_misses_per_phone"} (it writes no audit row)."""
    from datetime import date

    from registry.models import AuditEvent, Guardian, GuardianLink, Institution, Learner, utcnow
    from registry.services.accounts import (
        MISS_ACTION,
        MISSES_PER_DAY,
        ActivationResult,
        Keys,
        start_activation,
    )
    from tests.conftest import TEST_SECRET

    phone = "+254712000311"
    with runtime.db.transaction() as session:
        school = Institution(code="RD4Y", name="Kamukunji Primary", county_code="047")
        learner = Learner(upi="RDM0001", first_name="Imani", last_name="Mutua", date_of_birth=date(2014, 6, 1),
                          gender="F", birth_certificate_no="RD77", grade="Grade 5", institution=school)
        guardian = Guardian(phone=phone)
        session.add_all([learner, guardian, GuardianLink(learner=learner, guardian=guardian, relationship_="mother")])
        session.add_all([AuditEvent(at=utcnow(), phone=phone, action=MISS_ACTION, channel="ussd")
                         for _ in range(MISSES_PER_DAY)])
    before = value("elimu_rate_limited_total", limit="activation_misses_per_phone")
    with runtime.db.transaction() as session:
        found = start_activation(session, Keys.from_secret(TEST_SECRET), phone, "RD77", date(2014, 6, 1), utcnow())
    assert found.result is ActivationResult.MISS_LIMIT
    assert value("elimu_rate_limited_total", limit="activation_misses_per_phone") - before == 1


def test_results_refused_by_the_daily_misses_limit_are_counted(client, runtime):
    """After 10 misses in a day a phone's names are not checked (a ``results_refused`` row, like a
    query without a name): elimu_rate_limited_total{limit="results_misses_per_phone"} tells them apart."""
    from registry.models import AuditEvent, utcnow
    from registry.services.sms_replies import MISS_ACTION, MISSES_PER_DAY

    phone = "+254712000312"
    with runtime.db.transaction() as session:
        session.add_all([AuditEvent(at=utcnow(), phone=phone, action=MISS_ACTION, channel="sms")
                         for _ in range(MISSES_PER_DAY)])
    before = value("elimu_rate_limited_total", limit="results_misses_per_phone")
    text_in(client, phone, "KCSE 36611030002 Wanjiku")
    text_in(client, "+254712000313", "KCSE 36611030002 Wanjiku")  # another phone: checked, a miss
    work_queues(runtime)
    assert value("elimu_rate_limited_total", limit="results_misses_per_phone") - before == 1


# --- delivery reports ------------------------------------------------------------------------------


def test_a_final_delivery_report_observes_how_long_the_message_waited_for_it(client, runtime):
    """elimu_delivery_report_lag_seconds{status}: from AT taking the message to the report that
    settles it; a report on the way (Sent) and a repeat observe nothing."""
    from datetime import timedelta

    from registry.models import MessageKind, MessageStatus, OutboundMessage, Priority, utcnow

    taken = utcnow() - timedelta(seconds=90)
    with runtime.db.transaction() as session:
        for pmid in ("ATXid_lag1", "ATXid_lag2"):
            session.add(OutboundMessage(recipient="+254712000314", kind=MessageKind.REPLY, body="x",
                                        priority=Priority.REPLY, status=MessageStatus.SUBMITTED, accepted_at=taken,
                                        provider_message_id=pmid))

    def report(pmid: str, status: str) -> None:
        response = client.post("/sms/africastalking/delivery", data={
            "id": pmid, "status": status, "phoneNumber": "+254712000314", "networkCode": "63902"})
        assert response.status_code == 200

    def observed(status: str) -> tuple[float, float]:
        return (value("elimu_delivery_report_lag_seconds_count", status=status),
                value("elimu_delivery_report_lag_seconds_bucket", status=status, le="60.0"))

    before = {status: observed(status) for status in ("delivered", "failed")}
    report("ATXid_lag1", "Sent")
    report("ATXid_lag1", "Success")
    report("ATXid_lag1", "Success")  # a repeat changes nothing
    report("ATXid_lag2", "Failed")
    after = {status: observed(status) for status in ("delivered", "failed")}
    for status in ("delivered", "failed"):
        count, within_a_minute = (a - b for a, b in zip(after[status], before[status], strict=True))
        assert (count, within_a_minute) == (1, 0)  # one observation, of more than a minute (90 s)


def test_malformed_sms_callbacks_are_counted_as_refused(client):
    """An inbound text AT sends without a field is answered 400 and sent again for 12 hours, never
    answered: elimu_callbacks_refused_total{reason="malformed"} shows it."""
    before = value("elimu_callbacks_refused_total", reason="malformed")
    inbound = client.post("/sms/africastalking/inbound", data={"to": "22384", "text": "HELP", "id": "rdm-bad-1"})
    delivery = client.post("/sms/africastalking/delivery", data={"status": "Success"})
    optout = client.post("/sms/africastalking/optout", data={"senderId": "ELIMU"})
    assert (inbound.status_code, delivery.status_code, optout.status_code) == (400, 400, 400)
    assert value("elimu_callbacks_refused_total", reason="malformed") - before == 3


def test_every_way_an_audit_row_is_written_is_counted():
    """Rows added as ``AuditEvent`` objects are counted by the insert listener; rows written in one
    INSERT (``batched_disclosures``) only where the caller hands them to ``audited``: a new batch
    elsewhere, or a raw INSERT, would be missing from elimu_audit_events_total."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sources = {path.relative_to(root).as_posix(): path.read_text()
               for package in ("registry", "gateway", "workers", "menus") for path in (root / package).rglob("*.py")}
    raw = [name for name, text in sources.items()
           if re.search(r"insert\s+into\s+audit_events|AuditEvent\.__table__", text, re.I)]
    assert raw == ["registry/services/audit.py"], raw  # batched_disclosures' own INSERT
    batching = sorted(name for name, text in sources.items()
                      if "batched_disclosures(" in text and name != "registry/services/audit.py")
    assert batching == ["workers/inbound.py"], batching
    assert all("audited(session" in sources[name] for name in batching)
