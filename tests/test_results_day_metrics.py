"""What an operator watches on results day moves when its event happens (docs/operations.md,
"Results day dashboard"): each test makes the event and reads the counter before and after.

Counters are read from this process's registry (the web's and the workers' alike: the tests run
both in one process, as the embedded mode does)."""

from __future__ import annotations

import itertools
from collections import Counter

from prometheus_client import REGISTRY

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
