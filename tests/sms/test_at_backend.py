"""The real AT SDK against a fake AT server, through the real send job on RQ (fakeredis)."""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading

import pytest
from prometheus_client import REGISTRY

from registry.models import MessageKind, MessageStatus
from registry.outbox import queue_many, queue_sms
from tests.conftest import missing
from tests.sms.support import (
    FakeAT,
    Scripted,
    at_settings,
    fake_at_server,
    job_runtime,
    outbox_rows,
    work_queues,
)
from workers.backends import Outgoing
from workers.backends.africastalking import AfricasTalkingBackend, sms_service

PHONE = "+254712345678"


def sent_count(kind: str, status: str) -> float:
    return REGISTRY.get_sample_value("elimu_sms_messages_total", {"kind": kind, "status": status}) or 0.0


def queue(runtime, *messages, kind=MessageKind.NOTICE, body="Elimu: school opens on Monday."):
    with runtime.db.transaction() as session:
        return [queue_sms(session, phone, kind, body).id for phone in messages]


def test_success_records_the_provider_id_cost_and_code(at_runtime, fake_at: FakeAT):
    [message_id] = queue(at_runtime, PHONE)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.id, row.status, row.attempts, row.status_code) == (message_id, MessageStatus.SUBMITTED, 1, 101)
    assert row.provider_message_id == "ATXid_1" and row.cost == "KES 0.8000" and row.accepted_at is not None
    [seen] = fake_at.requests
    assert seen.path == "/version1/messaging"
    assert seen.form == {"username": "elimu", "to": PHONE, "message": "Elimu: school opens on Monday.",
                         "bulkSMSMode": "1", "from": "ELIMU"}
    assert seen.headers["Apikey"] == "test-api-key"


def test_http_500_then_success_is_retried_by_rq(at_runtime, fake_at, quick_retries):
    fake_at.then(Scripted(status=500, body="Internal Server Error", content_type="text/plain"))
    queue(at_runtime, PHONE)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.attempts, row.provider_message_id) == (MessageStatus.SUBMITTED, 2, "ATXid_1")
    assert len(fake_at.requests) == 2


def test_recipient_status_500_then_success(at_runtime, fake_at, quick_retries):
    fake_at.then(Scripted(codes={PHONE: 500}))
    queue(at_runtime, PHONE)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.attempts, row.status_code) == (MessageStatus.SUBMITTED, 2, 101)


def test_403_invalid_number_fails_after_one_attempt(at_runtime, fake_at, quick_retries):
    fake_at.then(Scripted(codes={PHONE: 403}))
    queue(at_runtime, PHONE)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.attempts, row.status_code) == (MessageStatus.FAILED, 1, 403)
    assert row.failure_reason == "AT 403 InvalidPhoneNumber"
    assert len(fake_at.requests) == 1


@pytest.mark.parametrize("code", [402, 405])
def test_a_refusal_of_the_account_is_retried_and_goes_once_fixed(at_runtime, fake_at, quick_retries, code, caplog):
    """InvalidSenderId and InsufficientBalance say nothing of the message: the operator fixes the
    sender id or tops up the balance within the retry window, as for a wrong API key, and it goes."""
    fake_at.then(Scripted(codes={PHONE: code}))
    queue(at_runtime, PHONE)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.attempts, row.status_code, row.failure_reason) == (MessageStatus.SUBMITTED, 2, 101, None)
    assert len(fake_at.requests) == 2
    assert f"AT refused a message for the account ({code} " in caplog.text


# 502 RejectedByGateway too: AT suggests retrying 500 and 501 only (AT-PROTOCOL.md, statusCode)
@pytest.mark.parametrize("code", [401, 403, 404, 406, 407, 409, 502])
def test_every_refusal_code_is_final(at_runtime, fake_at, quick_retries, code):
    fake_at.then(Scripted(codes={PHONE: code}))
    queue(at_runtime, PHONE)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.attempts, row.status_code) == (MessageStatus.FAILED, 1, code)
    assert row.failure_reason.startswith(f"AT {code} ")


@pytest.mark.parametrize("code", [500, 501])
def test_server_side_codes_are_retried_until_attempts_run_out(at_runtime, fake_at, quick_retries, code):
    counted = {status: sent_count("notice", status) for status in ("retry", "failed")}
    fake_at.then(*[Scripted(codes={PHONE: code})] * 3)
    queue(at_runtime, PHONE)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.attempts) == (MessageStatus.FAILED, 3)
    assert row.failure_reason.startswith("gave up after 3 attempts: AT ")
    assert len(fake_at.requests) == 3
    # two attempts went back to the queue; the last one failed the message, and counts as failed
    assert {status: sent_count("notice", status) - before for status, before in counted.items()} == {
        "retry": 2, "failed": 1}


def test_a_timeout_is_retried(tmp_path, sqlite_database, fake_redis, fake_at, quick_retries, monkeypatch):
    monkeypatch.setattr("workers.backends.africastalking.DEFAULT_TIMEOUT", (2.0, 0.2))
    fake_at.then(Scripted(delay=1.0))
    with job_runtime(tmp_path, sqlite_database, fake_redis, **at_settings(fake_at)) as runtime:
        queue(runtime, PHONE)
        work_queues(runtime)
        [row] = outbox_rows(runtime)
    assert (row.status, row.attempts) == (MessageStatus.SUBMITTED, 2)
    assert row.provider_message_id.startswith("ATXid_") and row.failure_reason is None
    # The slow first request may have reached the phone too: the one in-flight duplicate.
    assert fake_at.sent_to(PHONE) == 2


def test_a_premium_reply_whose_answer_is_lost_is_never_sent_twice(
    tmp_path, database, fake_redis, fake_at, quick_retries, monkeypatch
):
    """The request went out, then the answer timed out: AT may have taken the reply, which the
    parent pays for. It counts as taken, is not resent (not by RQ, not by the reconciler), and
    AT's delivery report, whose id the service never learnt, finds it by the phone."""
    from datetime import timedelta

    from gateway.app import create_app
    from registry.models import utcnow
    from workers.reconcile import reconcile

    monkeypatch.setattr("workers.backends.africastalking.DEFAULT_TIMEOUT", (2.0, 0.2))
    with job_runtime(tmp_path, database, fake_redis, **at_settings(fake_at)) as runtime:
        with runtime.db.transaction() as session:
            other = queue_sms(session, PHONE, MessageKind.NOTICE, "Elimu: school opens on Monday.").id
        work_queues(runtime)  # a message to the same phone, with its id known
        fake_at.then(Scripted(delay=1.0))
        with runtime.db.transaction() as session:
            reply = queue_sms(session, PHONE, MessageKind.REPLY, "Your results", link_id="SampleLinkId123").id
        work_queues(runtime)
        reconcile(runtime, now=utcnow() + timedelta(hours=1))
        work_queues(runtime)
        rows = {row.id: row for row in outbox_rows(runtime)}
        assert (rows[reply].status, rows[reply].attempts, rows[reply].provider_message_id) == (
            MessageStatus.SUBMITTED, 1, None)
        assert rows[reply].accepted_at is not None
        assert rows[reply].failure_reason == "answer lost (timeout); not resent, the subscriber pays for it"
        assert fake_at.sent_to(PHONE) == 2  # the notice and the one reply
        client = create_app(runtime=runtime).test_client()
        for status in ("Sent", "Success"):
            answer = client.post("/sms/africastalking/delivery",
                                 data={"id": "ATXid_lost", "status": status, "phoneNumber": PHONE, "networkCode": "63902"})
            assert answer.get_data(as_text=True) == "OK (updated)\n"
        rows = {row.id: row for row in outbox_rows(runtime)}
    assert (rows[reply].status, rows[reply].provider_message_id) == (MessageStatus.DELIVERED, "ATXid_lost")
    assert rows[reply].failure_reason is None
    assert (rows[other].status, rows[other].provider_message_id) == (MessageStatus.SUBMITTED, "ATXid_1")


@pytest.mark.parametrize(("kind", "link_id", "requests", "status", "reason"), [
    # the parent pays for a premium reply: AT may have taken it, so it is never sent again
    (MessageKind.REPLY, "SampleLinkId123", 1, MessageStatus.SUBMITTED,
     "answer lost (interrupted: JobTimeoutException); not resent, the subscriber pays for it"),
    # anything else goes again, counted as an attempt
    (MessageKind.NOTICE, None, 2, MessageStatus.SUBMITTED, None),
])
def test_a_job_whose_time_runs_out_while_its_one_request_waits_for_the_answer(
    at_runtime, fake_at, quick_retries, monkeypatch, kind, link_id, requests, status, reason
):
    """RQ ends a job that runs out of time by raising in it, here while the job's only request waits
    for AT's answer: the request went out whole, as after a read timeout."""
    monkeypatch.setattr("workers.queues.JOB_TIMEOUT", 1)
    fake_at.then(Scripted(delay=2.5))
    with at_runtime.db.transaction() as session:
        queue_sms(session, PHONE, kind, "Your results", link_id=link_id)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert len(fake_at.requests) == requests
    assert (row.status, row.attempts, row.failure_reason) == (status, requests, reason)
    assert row.accepted_at is not None and (row.provider_message_id is None) == (requests == 1)


@pytest.mark.parametrize(("connection", "error", "premium", "plain"), [
    # AT is there and slow: it may have taken the request
    ("kept", TimeoutError("timed out"), "unconfirmed: timeout", "retry: timeout"),
    ("fresh", TimeoutError("timed out"), "unconfirmed: timeout", "retry: timeout"),
    # a fresh connection reset or closed after the request went out: it may have been taken
    ("fresh", ConnectionResetError(104, "reset"), "unconfirmed: connection error: ConnectionResetError",
     "retry: connection error: ConnectionResetError"),
    # a kept connection that died while idle (a NAT forgot it, AT closed it): AT never read the request
    ("kept", ConnectionResetError(104, "reset"), "retry: connection error: ConnectionResetError",
     "retry: connection error: ConnectionResetError"),
    ("kept", http.client.RemoteDisconnected("closed"), "retry: connection error: RemoteDisconnected",
     "retry: connection error: RemoteDisconnected"),
])
def test_an_answer_lost_on_a_premium_reply_or_a_plain_message(fake_at, monkeypatch, connection, error, premium, plain):
    """After the request went out and before any answer: a premium reply whose request AT may have
    taken is unconfirmed (never resent), anything else retried."""
    from workers.backends import africastalking as at

    backend = AfricasTalkingBackend(sms_service("elimu", "test-api-key", fake_at.url), short_code="22384")
    messages = {"premium": Outgoing(1, PHONE, "Your results", "reply", link_id="L1"),
                "plain": Outgoing(2, PHONE, "Elimu: hello", "notice")}
    origin, _ = at._split(fake_at.url + "/messaging")
    for which, expected in (("premium", premium), ("plain", plain)):
        [warm] = backend.send([messages[which]])  # in this thread: its connection is kept
        assert warm.outcome == "accepted"
        if connection == "fresh":
            at._close(origin)

        def fail(*args, **kwargs):
            raise error

        with monkeypatch.context() as patch:
            patch.setattr(http.client.HTTPConnection, "getresponse", fail)
            [result] = backend.send([messages[which]])
        outcome, _, reason = expected.partition(": ")
        if outcome == "unconfirmed":
            reason = f"answer lost ({reason}); not resent, the subscriber pays for it"
        assert (result.outcome, result.reason) == (outcome, reason), which
        assert origin not in at._kept.connections  # dropped: its state is unknown


def test_an_answer_cut_off_after_it_began_is_lost_even_on_a_kept_connection(fake_at, monkeypatch):
    from workers.backends import africastalking as at

    backend = AfricasTalkingBackend(sms_service("elimu", "test-api-key", fake_at.url), short_code="22384")
    premium = Outgoing(1, PHONE, "Your results", "reply", link_id="L1")
    backend.send([premium])

    def cut(*args, **kwargs):
        raise http.client.IncompleteRead(b"{")

    monkeypatch.setattr(http.client.HTTPResponse, "read", cut)
    [result] = backend.send([premium])
    assert (result.outcome, result.reason) == (
        "unconfirmed", "answer lost (connection error: IncompleteRead); not resent, the subscriber pays for it")
    assert at._split(fake_at.url + "/messaging")[0] not in at._kept.connections


def test_a_kept_connection_idle_too_long_is_replaced(fake_at):
    """NATs and load balancers forget idle connections, and a request on one is reset unanswered:
    a connection idle for KEEP_IDLE_S is not used again."""
    from workers.backends import africastalking as at

    backend = AfricasTalkingBackend(sms_service("elimu", "test-api-key", fake_at.url))
    backend.send([Outgoing(1, PHONE, "first", "reply")])
    backend.send([Outgoing(2, PHONE, "second", "reply")])
    origin, _ = at._split(fake_at.url + "/messaging")
    kept = at._kept.connections[origin]
    kept.elimu_used -= at.KEEP_IDLE_S
    backend.send([Outgoing(3, PHONE, "third", "reply")])
    assert at._kept.connections[origin] is not kept and kept.sock is None
    ports = [seen.client_port for seen in fake_at.requests]
    assert ports[0] == ports[1] != ports[2]


def test_through_a_proxy_a_premium_replys_timeout_is_retried(monkeypatch):
    """``requests`` cannot tell a proxy's CONNECT or TLS handshake timing out from AT's answer
    doing so: through a proxy, no failure counts as an answer lost."""
    import requests

    from workers.backends import africastalking as at

    service = at.KeepAliveSMSService("elimu", "test-api-key")
    service._baseUrl = service._contentUrl = "http://at.invalid/version1"
    monkeypatch.setattr(at, "_proxies", lambda scheme_host: {"http": "http://proxy.invalid:3128"})
    monkeypatch.setattr(at.KeepAliveSMSService, "_local", threading.local())

    def post(*args, **kwargs):
        raise requests.exceptions.ReadTimeout("read timed out")

    monkeypatch.setattr(requests.Session, "post", post)
    backend = AfricasTalkingBackend(service, short_code="22384")
    [result] = backend.send([Outgoing(1, PHONE, "Your results", "reply", link_id="L1")])
    assert (result.outcome, result.reason) == ("retry", "timeout")


def test_a_connection_error_is_retried_then_fails(tmp_path, sqlite_database, fake_redis, quick_retries):
    settings = dict(sms_backend="africastalking", at_username="elimu", at_api_key="k",
                    at_api_base_url="http://127.0.0.1:9/version1", sms_rate_per_second=0.0)
    with job_runtime(tmp_path, sqlite_database, fake_redis, **settings) as runtime:
        queue(runtime, PHONE)
        work_queues(runtime)
        [row] = outbox_rows(runtime)
    assert (row.status, row.attempts) == (MessageStatus.FAILED, 3)
    assert "connection error: ConnectionRefusedError" in row.failure_reason  # refused: no timeout


def test_wrong_api_key_is_retried_then_fails_with_the_providers_text(
    tmp_path, sqlite_database, fake_redis, fake_at, quick_retries
):
    with job_runtime(tmp_path, sqlite_database, fake_redis, **at_settings(fake_at, at_api_key="wrong")) as runtime:
        queue(runtime, PHONE)
        work_queues(runtime)
        [row] = outbox_rows(runtime)
    assert (row.status, row.attempts, row.provider_message_id) == (MessageStatus.FAILED, 3, None)
    assert row.failure_reason.endswith("provider refused the request: The supplied authentication is invalid")
    assert len(fake_at.requests) == 3


def test_a_json_answer_with_a_charset_is_still_read(at_runtime, fake_at):
    # The SDK returns a str unless the content type is exactly application/json.
    fake_at.then(Scripted(content_type="application/json; charset=utf-8"))
    queue(at_runtime, PHONE)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.provider_message_id, row.status_code) == (MessageStatus.SUBMITTED, "ATXid_1", 101)


def test_an_unreadable_2xx_counts_as_accepted_and_is_never_sent_again(at_runtime, fake_at, quick_retries):
    fake_at.then(Scripted(body="<html>ok</html>", content_type="text/html"))
    queue(at_runtime, PHONE)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.provider_message_id, row.attempts) == (MessageStatus.SUBMITTED, None, 1)
    assert row.accepted_at is not None and "unreadable" in row.failure_reason
    assert len(fake_at.requests) == 1


def test_broken_json_labelled_json_counts_as_accepted_too(at_runtime, fake_at, quick_retries):
    fake_at.then(Scripted(body='{"SMSMessageData": {"Recipients": [', content_type="application/json"))
    queue(at_runtime, PHONE)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.attempts) == (MessageStatus.SUBMITTED, 1) and "unreadable" in row.failure_reason


@pytest.mark.parametrize("recipients", ['7', '"all"', '{"number": "+254712345678"}'])
def test_recipients_that_are_no_list_count_as_accepted_too(at_runtime, fake_at, quick_retries, recipients):
    fake_at.then(Scripted(body=f'{{"SMSMessageData": {{"Message": "Sent to 1/1", "Recipients": {recipients}}}}}',
                          content_type="application/json"))
    queue(at_runtime, PHONE)
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.attempts) == (MessageStatus.SUBMITTED, 1) and "unreadable" in row.failure_reason
    assert len(fake_at.requests) == 1


def test_a_recipient_without_a_code_but_with_status_success_is_accepted():
    from workers.backends.africastalking import classify

    answer = {"SMSMessageData": {"Recipients": [{"number": PHONE, "status": "Success", "messageId": "ATXid_7"}]}}
    [result] = classify([Outgoing(1, PHONE, "hello", "reply")], answer)
    assert (result.outcome, result.provider_message_id) == ("accepted", "ATXid_7")


def test_an_api_key_http_refuses_is_no_verdict_on_the_message(at_runtime, fake_at, quick_retries, caplog):
    """A newline in AT_API_KEY makes http.client refuse the header (a ValueError, like the SDK's
    own phone check): the message is retried and the log names the key, not "invalid number"."""
    backend = AfricasTalkingBackend(sms_service("elimu", "test-api-key\n", fake_at.url))
    [result] = backend.send([Outgoing(1, PHONE, "hello", "reply")])
    assert (result.outcome, result.reason) == ("retry", "request not made: ValueError")
    assert "check AT_API_KEY" in caplog.text and fake_at.requests == []


def test_without_a_proxy_posts_skip_requests_and_keep_their_connections(fake_at, monkeypatch):
    """Sends go on the thread's kept ``http.client`` connection: no ``requests`` session is made or used."""
    import requests

    from workers.backends import africastalking as at

    def refuse(*args, **kwargs):
        raise AssertionError("requests used for a direct POST")

    monkeypatch.setattr(requests.Session, "request", refuse)
    monkeypatch.setattr(at.KeepAliveSMSService, "_local", threading.local())
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    at._proxies.cache_clear()
    backend = AfricasTalkingBackend(sms_service("elimu", "test-api-key", fake_at.url))
    results = [result for n in range(3) for result in backend.send([Outgoing(n, PHONE, f"reply {n}", "reply")])]
    assert [r.outcome for r in results] == ["accepted"] * 3
    assert [seen.form["message"] for seen in fake_at.requests] == ["reply 0", "reply 1", "reply 2"]
    assert all(seen.headers["Content-Type"] == "application/x-www-form-urlencoded" for seen in fake_at.requests)
    assert all(seen.headers["User-Agent"].startswith("africastalking-python/") for seen in fake_at.requests)
    assert getattr(at.KeepAliveSMSService._local, "session", None) is None
    # three requests one after another, on one connection kept alive, with Nagle's algorithm off
    assert len({seen.client_port for seen in fake_at.requests}) == 1
    kept = at._kept.connections[at._split(fake_at.url + "/messaging")[0]]
    assert kept.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_a_kept_connection_the_server_closed_is_replaced_before_the_next_request(fake_at, monkeypatch):
    """An idle kept connection that AT closed is found closed and replaced before the POST goes:
    the message is sent once, on a new connection, with no error and no retry."""
    from workers.backends import africastalking as at

    backend = AfricasTalkingBackend(sms_service("elimu", "test-api-key", fake_at.url))
    [first] = backend.send([Outgoing(1, PHONE, "first", "reply")])
    origin, _ = at._split(fake_at.url + "/messaging")
    kept = at._kept.connections[origin]
    kept.sock.shutdown(socket.SHUT_RDWR)  # as when the server ends an idle connection: its end of file
    [second] = backend.send([Outgoing(2, PHONE, "second", "reply")])
    assert (first.outcome, second.outcome) == ("accepted", "accepted")
    assert [seen.form["message"] for seen in fake_at.requests] == ["first", "second"]
    assert at._kept.connections[origin] is not kept


def test_a_connection_error_mid_request_is_retried_and_the_connection_dropped(fake_at, monkeypatch):
    """A connection reset while the request is on its way is a retry, and the next request goes
    on a fresh connection."""
    from workers.backends import africastalking as at

    backend = AfricasTalkingBackend(sms_service("elimu", "test-api-key", fake_at.url))
    backend.send([Outgoing(1, PHONE, "first", "reply")])
    origin, _ = at._split(fake_at.url + "/messaging")
    broken = at._kept.connections[origin]

    def reset(*args, **kwargs):
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(broken, "getresponse", reset)
    [result] = backend.send([Outgoing(2, PHONE, "second", "reply")])
    assert (result.outcome, result.reason) == ("retry", "connection error: ConnectionResetError")
    assert origin not in at._kept.connections and broken.sock is None
    [again] = backend.send([Outgoing(2, PHONE, "second", "reply")])
    assert again.outcome == "accepted"


@pytest.fixture
def tls_files(tmp_path):
    """A self-signed certificate for 127.0.0.1 and its key, made by the openssl command."""
    if shutil.which("openssl") is None:
        missing("the openssl command is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


def test_tls_is_verified_against_the_bundle_requests_would_use(tls_files, monkeypatch):
    """Over HTTPS the certificate is checked: refused (a retry, nothing sent) against certifi's
    bundle, accepted against the bundle ``REQUESTS_CA_BUNDLE`` names."""
    from workers.backends import africastalking as at

    cert, _ = tls_files
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    at._proxies.cache_clear()
    with fake_at_server(tls=tls_files) as fake:
        backend = AfricasTalkingBackend(sms_service("elimu", "test-api-key", fake.url))
        at._tls_context.cache_clear()
        [refused] = backend.send([Outgoing(1, PHONE, "over TLS", "reply")])
        assert (refused.outcome, refused.reason) == ("retry", "connection error: SSLCertVerificationError")
        assert fake.requests == []
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
        at._tls_context.cache_clear()
        [sent] = backend.send([Outgoing(1, PHONE, "over TLS", "reply")])
        assert sent.outcome == "accepted" and [seen.form["message"] for seen in fake.requests] == ["over TLS"]
    at._tls_context.cache_clear()


def test_an_invalid_number_fails_without_a_request(at_runtime, fake_at):
    queue(at_runtime, "0712345678")
    work_queues(at_runtime)
    [row] = outbox_rows(at_runtime)
    assert (row.status, row.failure_reason) == (MessageStatus.FAILED, "invalid phone number")
    assert fake_at.requests == []


def test_a_bulk_notice_goes_as_one_request_per_batch(at_runtime, fake_at):
    phones = [f"+2547{n:08d}" for n in range(250)]
    with at_runtime.db.transaction() as session:
        queue_many(session, [(p, MessageKind.ANNOUNCEMENT, "Closing day is Friday.", None) for p in phones],
                   announcement_id=7)
    work_queues(at_runtime)
    assert [len(seen.recipients) for seen in fake_at.requests] == [100, 100, 50]
    assert all(seen.form["enqueue"] == "1" for seen in fake_at.requests)
    assert sorted(n for seen in fake_at.requests for n in seen.recipients) == phones
    rows = outbox_rows(at_runtime)
    assert {row.status for row in rows} == {MessageStatus.SUBMITTED}
    assert len({row.provider_message_id for row in rows}) == 250


def test_one_refused_recipient_of_a_batch_fails_alone(at_runtime, fake_at):
    phones = [f"+2547{n:08d}" for n in range(3)]
    fake_at.then(Scripted(codes={phones[1]: 406}))
    with at_runtime.db.transaction() as session:
        queue_many(session, [(p, MessageKind.ANNOUNCEMENT, "Hello", None) for p in phones], announcement_id=1)
    work_queues(at_runtime)
    assert [row.status for row in outbox_rows(at_runtime)] == [
        MessageStatus.SUBMITTED, MessageStatus.FAILED, MessageStatus.SUBMITTED]
    assert len(fake_at.requests) == 1


def test_a_reply_with_a_link_id_goes_premium_from_the_short_code(at_runtime, fake_at):
    with at_runtime.db.transaction() as session:
        queue_sms(session, PHONE, MessageKind.REPLY, "Your results", link_id="SampleLinkId123")
    work_queues(at_runtime)
    [seen] = fake_at.requests
    assert seen.form == {"username": "elimu", "to": PHONE, "from": "22384", "message": "Your results",
                         "bulkSMSMode": "0", "linkId": "SampleLinkId123"}


def test_an_otp_goes_out_in_clear_and_stays_redacted_in_the_database(at_runtime, fake_at):
    with at_runtime.db.transaction() as session:
        queue_sms(session, PHONE, MessageKind.OTP, "Elimu code: ******", secret="Elimu code: 493021")
    work_queues(at_runtime)
    [seen] = fake_at.requests
    assert seen.form["message"] == "Elimu code: 493021"
    [row] = outbox_rows(at_runtime)
    assert row.body == "Elimu code: ******" and row.status is MessageStatus.SUBMITTED


def test_the_sdk_service_is_built_once_per_process_and_points_at_the_base_url(fake_at):
    first = sms_service("elimu", "k", fake_at.url)
    assert sms_service("elimu", "k", fake_at.url) is first
    assert first._baseUrl == fake_at.url and first._contentUrl == fake_at.url


def test_the_backend_classifies_without_raising_on_a_refused_request(fake_at):
    backend = AfricasTalkingBackend(sms_service("elimu", "wrong", fake_at.url))
    [result] = backend.send([Outgoing(1, PHONE, "hi", "notice")])
    assert result.outcome == "retry" and "authentication is invalid" in result.reason


def test_the_requests_of_one_send_are_booked_with_the_throttle_in_one_go(fake_at):
    booked: list[list[int]] = []

    class Throttle:
        @staticmethod
        def sleep(seconds: float) -> None:
            raise AssertionError("nothing to wait for")

        def schedule(self, counts, urgent=()):
            booked.append(list(counts))
            return [0.0] * len(counts)

        def acquire(self, count, urgent=False):
            raise AssertionError("booked one request at a time")

    backend = AfricasTalkingBackend(sms_service("elimu", "test-api-key", fake_at.url), Throttle())
    results = backend.send([Outgoing(n, PHONE, f"reply {n}", "reply") for n in range(3)])
    assert booked == [[1, 1, 1]] and [r.outcome for r in results] == ["accepted"] * 3
    assert len(fake_at.requests) == 3


def test_a_code_is_sent_at_once_while_a_drain_is_booked_ahead(fake_at):
    """At ELIMU_SMS_RATE's pace a drain books seconds ahead; an OTP (and the UPI after one) goes at
    once, where it waited behind the drain's bookings (seconds, on the code screen)."""
    import fakeredis

    from workers.throttle import Throttle

    slept: list[float] = []
    throttle = Throttle(fakeredis.FakeRedis(), "africastalking", rate_per_second=10.0, burst_seconds=0.0,
                        sleep=slept.append)
    backend = AfricasTalkingBackend(sms_service("elimu", "test-api-key", fake_at.url), throttle)
    throttle.reserve(200)  # another worker's announcement batches: twenty seconds booked
    [code] = backend.send([Outgoing(1, PHONE, "Elimu code: 123456", "otp")])
    [upi] = backend.send([Outgoing(2, PHONE, "Elimu: the UPI of Jane W. is A1B2C3.", "upi")])
    assert (code.outcome, upi.outcome, slept) == ("accepted", "accepted", [])
    backend.send([Outgoing(3, PHONE, "Elimu: school opens on Monday.", "notice")])
    assert len(slept) == 1 and slept[0] > 20.0  # a notice waits its turn, behind the codes too
    mixed = backend.send([Outgoing(4, "+254711000004", "notice", "notice"),
                          Outgoing(5, "+254711000005", "Elimu code: 654321", "otp")])
    assert {r.message_id: r.outcome for r in mixed} == {4: "accepted", 5: "accepted"}
    assert len(slept) == 2  # in one send, too, only the notice waited


@pytest.mark.parametrize("concurrency", [1, 8, 16])
def test_many_requests_share_the_threads_and_keep_their_order(fake_at, concurrency):
    backend = AfricasTalkingBackend(sms_service("elimu", "test-api-key", fake_at.url), concurrency=concurrency)
    messages = [Outgoing(n, f"+2547110{n:05d}", f"reply {n}", "reply") for n in range(3 * concurrency + 1)]
    results = backend.send(messages)
    assert [r.message_id for r in results] == list(range(len(messages)))
    assert [r.outcome for r in results] == ["accepted"] * len(messages)
    assert sorted(seen.form["to"] for seen in fake_at.requests) == sorted(m.recipient for m in messages)


def test_the_requests_in_flight_follow_the_setting(fake_at):
    """With a slow provider, ELIMU_SMS_CONCURRENCY requests are in flight at once, no more."""
    from workers.backends.africastalking import AfricasTalkingBackend as Backend

    fake_at.delay = 0.3
    settings = type("S", (), {"at_username": "elimu", "at_api_key": "test-api-key", "at_api_base_url": fake_at.url,
                               "at_sender_id": None, "at_short_code": None, "sms_concurrency": 6})()
    backend = Backend.from_settings(settings)
    assert backend.concurrency == 6
    results = backend.send([Outgoing(n, f"+2547110{n:05d}", f"reply {n}", "reply") for n in range(12)])
    assert [r.outcome for r in results] == ["accepted"] * 12
    assert fake_at.most_in_flight == 6


def test_an_unexpected_error_is_raised_once_every_other_request_has_ended(fake_at, monkeypatch):
    backend = AfricasTalkingBackend(sms_service("elimu", "test-api-key", fake_at.url))
    real, ended = backend._request, []

    def request(kind, batch, bulk, throttled=True):
        if batch[0].message_id == 0:
            raise RuntimeError("a bug")
        answer = real(kind, batch, bulk, throttled)
        ended.append(batch[0].message_id)
        return answer

    monkeypatch.setattr(backend, "_request", request)
    with pytest.raises(RuntimeError, match="a bug"):
        backend.send([Outgoing(n, f"+2547110{n:05d}", f"reply {n}", "reply") for n in range(20)])
    assert sorted(ended) == list(range(1, 20))


def test_the_proxy_comes_from_the_environment_read_once_per_host(fake_at, monkeypatch):
    """``requests`` would re-read the environment on every request; the backend reads it once per
    host and still honours it: here the fake AT stands as the proxy of an unresolvable host."""
    import requests

    from workers.backends import africastalking as at

    origin = fake_at.url.rsplit("/", 1)[0]
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, origin)
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    reads: list[str] = []
    real = requests.utils.get_environ_proxies
    counted = lambda url, *a, **k: reads.append(url) or real(url, *a, **k)  # noqa: E731
    monkeypatch.setattr(requests.utils, "get_environ_proxies", counted)
    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counted)  # what requests itself calls
    at._proxies.cache_clear()
    monkeypatch.setattr(at.KeepAliveSMSService, "_local", threading.local())  # no session from other tests
    service = at.KeepAliveSMSService("elimu", "test-api-key")
    service._baseUrl = service._contentUrl = "http://at.invalid/version1"
    try:
        results = AfricasTalkingBackend(service).send([Outgoing(n, PHONE, f"reply {n}", "reply") for n in range(3)])
    finally:
        at._proxies.cache_clear()
    assert [r.outcome for r in results] == ["accepted"] * 3
    assert [seen.headers.get("Host") for seen in fake_at.requests] == ["at.invalid"] * 3
    assert reads == ["http://at.invalid/"]


def test_an_operator_is_told_once_what_premium_replies_lack(monkeypatch, caplog, tmp_path):
    """No AT_SHORT_CODE: replies to premium messages go without their linkId; a proxy in front of
    AT's content API: a premium reply whose answer is lost is retried (charged twice, maybe)."""
    from gateway.config import Settings
    from tests.conftest import TEST_SECRET
    from workers.backends import africastalking as at

    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(at, "_warned", set())
    at._proxies.cache_clear()
    content = "https://content.africastalking.com/version1"
    assert at.setup_warnings("22384", content) == []
    assert at.setup_warnings(None, content)[0].startswith("AT_SHORT_CODE is unset")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    at._proxies.cache_clear()
    try:
        assert at.setup_warnings("22384", content)[0].startswith("a proxy is set for AT's content API")
        env = {"ELIMU_SECRET_KEY": TEST_SECRET, "ELIMU_INSTANCE_PATH": str(tmp_path), "SMS_BACKEND": "africastalking",
               "AT_USERNAME": "elimu", "AT_API_KEY": "test-api-key", "AT_SHORT_CODE": "22384"}
        for _ in range(3):
            AfricasTalkingBackend.from_settings(Settings.from_env(env))
    finally:
        monkeypatch.delenv("HTTPS_PROXY")
        at._proxies.cache_clear()
    warned = [r.getMessage() for r in caplog.records if r.name == at.__name__]
    assert len(warned) == 1 and "charged twice" in warned[0]
