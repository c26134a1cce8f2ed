"""elimu_sms_send_errors_total{error,outcome}: why AT did not take a send, counted by the worker
that sent it (AT's status by name, or the transport's failure), beside what became of the message."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from registry.models import MessageKind
from registry.outbox import queue_sms
from tests.sms.support import Scripted, work_queues
from workers.backends import Outcome, SendResult
from workers.backends.africastalking import ERROR_LABELS, REFUSED, RETRYABLE, error_label

PHONE = "+254712345678"


def errors(error: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("elimu_sms_send_errors_total", {"error": error, "outcome": outcome}) or 0.0


def send_one(runtime) -> None:
    with runtime.db.transaction() as session:
        queue_sms(session, PHONE, MessageKind.NOTICE, "Elimu: school opens on Monday.")
    work_queues(runtime)


@pytest.mark.parametrize(("answer", "error", "outcome"), [
    (Scripted(codes={PHONE: 405}), "InsufficientBalance", "retry"),  # the account's: retried, then taken
    (Scripted(codes={PHONE: 402}), "InvalidSenderId", "retry"),
    (Scripted(codes={PHONE: 403}), "InvalidPhoneNumber", "failed"),
    (Scripted(codes={PHONE: 406}), "UserInBlacklist", "failed"),
    (Scripted(codes={PHONE: 500}), "InternalServerError", "retry"),
    (Scripted(status=401, body="The supplied authentication is invalid", content_type="text/plain"),
     "request_refused", "retry"),
    (Scripted(status=503, body="Service Unavailable", content_type="text/plain"), "request_refused", "retry"),
])
def test_each_send_not_taken_is_counted_by_why(at_runtime, fake_at, quick_retries, answer, error, outcome):
    fake_at.then(answer)
    before = errors(error, outcome)
    send_one(at_runtime)
    assert errors(error, outcome) - before == 1


def test_a_send_retried_until_its_attempts_run_out_is_counted_failed_at_the_last(at_runtime, fake_at, quick_retries):
    fake_at.then(*[Scripted(codes={PHONE: 501})] * 3)  # quick_retries: three attempts
    before = {outcome: errors("GatewayError", outcome) for outcome in ("retry", "failed")}
    send_one(at_runtime)
    assert errors("GatewayError", "retry") - before["retry"] == 2
    assert errors("GatewayError", "failed") - before["failed"] == 1


@pytest.mark.parametrize(("reason", "label"), [
    ("timeout", "timeout"),
    ("connection error: ConnectionResetError", "connection"),
    ("interrupted: JobTimeoutException", "answer_lost"),
    ("answer lost (timeout); not resent, the subscriber pays for it", "answer_lost"),
    ("provider refused the request: The supplied authentication is invalid", "request_refused"),
    ("not in provider answer: Sent to 0/1", "not_in_answer"),
    ("not sent: its turn came too late", "not_sent"),
    ("request not made: InvalidHeader", "not_sent"),
    ("invalid phone number", "InvalidPhoneNumber"),
    ("no result from backend", "other"),
    (None, "other"),
])
def test_transport_failures_have_a_bounded_name(reason, label):
    assert error_label(SendResult(1, Outcome.RETRY, reason=reason)) == label
    assert label in ERROR_LABELS


def test_every_at_code_is_named_as_at_names_it_and_an_unknown_one_is_other():
    for code, name in {**REFUSED, **RETRYABLE}.items():
        assert error_label(SendResult(1, Outcome.FAILED, status_code=code, reason=f"AT {code} {name}")) == name
    assert error_label(SendResult(1, Outcome.FAILED, status_code=999, reason="AT 999 Whatever")) == "other"
    assert {*REFUSED.values(), *RETRYABLE.values()} <= ERROR_LABELS
