"""Edge checks shared by every callback: webhook token, source networks, body size, request ids, metrics."""

import dataclasses
import io
import logging

import pytest

from gateway.app import create_app
from gateway.logs import RedactingFilter, redact
from gateway.runtime import Runtime
from tests.conftest import make_settings


def _client(runtime: Runtime, tmp_path, **overrides):
    settings = make_settings(tmp_path, runtime.db, **overrides)
    rt = Runtime.build(settings, db=runtime.db, redis=runtime.redis)
    return create_app(runtime=rt).test_client()


@pytest.mark.parametrize("path", ["/ussd/africastalking", "/ussd/africastalking/events",
                                  "/sms/africastalking/inbound", "/sms/africastalking/delivery"])
def test_token_required_on_every_callback(runtime, tmp_path, path):
    client = _client(runtime, tmp_path, webhook_token="s3cret-token-value")
    for query in ("", "?token=wrong", "?token=s3cret-token-valu", "?token="):
        response = client.post(path + query, data={"sessionId": "x"})
        assert response.status_code == 403, query
        assert response.data == b"Forbidden\n"


def test_right_token_passes_the_edge(runtime, tmp_path):
    client = _client(runtime, tmp_path, webhook_token="s3cret-token-value")
    response = client.post("/ussd/africastalking?token=s3cret-token-value", data={})
    assert response.status_code != 403


@pytest.mark.parametrize(("env", "overrides", "warned"), [
    ("production", {}, True),
    ("production", {"webhook_token": "s3cret-token-value"}, False),
    ("production", {"allowed_networks": ("10.0.0.0/8",)}, False),
    ("development", {}, False),
])
def test_unauthenticated_callbacks_are_warned_of_outside_development(runtime, tmp_path, caplog, env, overrides,
                                                                    warned):
    settings = dataclasses.replace(make_settings(tmp_path, runtime.db, **overrides), env=env)
    with caplog.at_level(logging.WARNING, logger="gateway.security"):
        create_app(runtime=Runtime.build(settings, db=runtime.db, redis=runtime.redis))
    assert any("callbacks are not authenticated" in r.getMessage() for r in caplog.records) is warned


def test_health_is_not_a_callback(runtime, tmp_path):
    client = _client(runtime, tmp_path, webhook_token="s3cret-token-value")
    assert client.get("/healthz").status_code == 200


def test_network_allow_list(runtime, tmp_path):
    client = _client(runtime, tmp_path, allowed_networks=("10.0.0.0/8",))
    assert client.post("/sms/africastalking/delivery", data={}).status_code == 403
    allowed = client.post("/sms/africastalking/delivery", data={}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert allowed.status_code != 403


def test_allow_list_admits_an_ipv4_mapped_address_of_an_allowed_network(runtime, tmp_path):
    """Behind a dual-stack listener an IPv4 client's address is ``::ffff:a.b.c.d``."""
    client = _client(runtime, tmp_path, allowed_networks=("196.201.214.0/24",))
    for remote, status in (("::ffff:196.201.214.5", 200), ("::ffff:196.201.215.5", 403)):
        for path in ("/sms/africastalking/delivery", "/ussd/africastalking/events"):
            response = client.post(path, data={"id": "ATXid_1", "status": "Success"}, environ_base={"REMOTE_ADDR": remote})
            assert response.status_code == status, (remote, path)
            # a GET callback is never taken by the fast path: Flask's own check
            assert (client.get(path, environ_base={"REMOTE_ADDR": remote}).status_code == 403) is (status == 403)


def test_allow_list_behind_a_trusted_proxy(runtime, tmp_path):
    client = _client(runtime, tmp_path, allowed_networks=("10.0.0.0/8",), trusted_proxies=1)
    headers = {"X-Forwarded-For": "10.9.9.9"}
    assert client.post("/sms/africastalking/delivery", data={}, headers=headers).status_code != 403
    spoofed = {"X-Forwarded-For": "10.9.9.9, 8.8.8.8"}  # only the last hop is trusted
    assert client.post("/sms/africastalking/delivery", data={}, headers=spoofed).status_code == 403


def test_oversized_body_is_413(runtime, tmp_path):
    client = _client(runtime, tmp_path, max_body_bytes=1024)
    response = client.post("/ussd/africastalking", data={"text": "1" * 5000, "sessionId": "s"})
    assert response.status_code == 413


class _WatchedBody(io.BytesIO):
    """A request body that notes whether anything read it."""

    was_read = False

    def read(self, size: int | None = -1) -> bytes:
        self.was_read = True
        return super().read(size)

    def readline(self, size: int | None = -1) -> bytes:
        self.was_read = True
        return super().readline(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        self.was_read = True
        return super().readinto(buffer)


@pytest.mark.parametrize(("size", "content_type"), [(5000, "application/x-www-form-urlencoded"),
                                                    (100, "application/x-www-form-urlencoded"),
                                                    (100, "multipart/form-data; boundary=x")])
@pytest.mark.parametrize("path", ["/ussd/africastalking", "/sms/africastalking/delivery"])
def test_a_callback_without_its_token_is_refused_before_its_body_is_read(runtime, tmp_path, size, content_type, path):
    """403 for a missing token, not 413 for a body over the limit: the body is never read."""
    client = _client(runtime, tmp_path, webhook_token="s3cret-token-value", max_body_bytes=1024)
    body = _WatchedBody(b"text=" + b"1" * (size - 5))
    response = client.post(path, input_stream=body, content_length=size, content_type=content_type,
                           headers={"X-Request-ID": "rid-403"})
    assert response.status_code == 403 and response.data == b"Forbidden\n"
    assert response.headers["X-Request-ID"] == "rid-403"
    assert not body.was_read


def test_request_id_echoed(client):
    response = client.get("/healthz", headers={"X-Request-ID": "abc123"})
    assert response.headers["X-Request-ID"] == "abc123"
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 16


def test_redaction_masks_phones_and_codes():
    assert redact("to +254712345678 code 482913") == "to +254******678 code ######"
    assert redact("from 0712345678") == "from +254******678"
    assert redact("year 2025, 3 hops") == "year 2025, 3 hops"


def test_redacting_filter_on_args_and_extras():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent to %s", ("+254712345678",), None)
    record.phone = "+254799999999"
    RedactingFilter().filter(record)
    assert "712345678" not in record.getMessage()
    assert record.phone == "+254******999"


def test_metrics_endpoint_serves_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert b"elimu_ussd_hops_total" in response.data or b"# HELP elimu_ussd_hops" in response.data
    assert b'elimu_queue_depth{queue="sms-otp"}' in response.data


def test_json_log_lines_carry_request_and_session_ids(runtime, tmp_path, capsys):
    import json

    from gateway.logs import configure_logging

    settings = make_settings(tmp_path, runtime.db, log_format="json")
    app = create_app(runtime=Runtime.build(settings, db=runtime.db, redis=runtime.redis))
    try:
        with app.test_request_context("/ussd/africastalking", method="POST", headers={"X-Request-ID": "req-42"},
                                      data={"sessionId": "ATUid_77", "phoneNumber": "+254712345678"}):
            app.preprocess_request()
            logging.getLogger("elimu.test").warning("hop from %s", "+254712345678", extra={"screen": "main"})
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        configure_logging("text")
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "elimu.test"
    assert entry["request_id"] == "req-42" and entry["session_id"] == "ATUid_77" and entry["screen"] == "main"
    assert entry["msg"] == "hop from +254******678"
    assert "ts" in entry


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_failed_statement_logged_with_its_traceback_quotes_no_parameters(runtime, database, fmt, capsys):
    """A statement that fails is logged with its traceback: its parameters (the sender, what was
    sent) are never quoted, and a phone or index number in the database's own message is masked."""
    from sqlalchemy import text as sql

    from gateway.logs import configure_logging

    configure_logging(fmt)
    try:
        try:
            database.fetch(sql("SELECT CAST(:sender AS TEXT), CAST(:body AS TEXT), 1 / 0"),
                           {"sender": "+254712345678", "body": "KCSE 19301012001 Wanjiku"})
        except Exception:  # noqa: BLE001
            logging.getLogger("elimu.test").exception("inbound SMS not stored")
        with database.transaction() as session:
            try:
                with session.begin_nested():
                    session.execute(sql("SELECT CAST(:sender AS INTEGER), CAST(:body AS TEXT)"),
                                    {"sender": "+254712345678", "body": "KCSE 19301012001 Wanjiku"})
            except Exception:  # noqa: BLE001
                logging.getLogger("elimu.test").exception("inbound SMS not stored")
        logged = capsys.readouterr().err
    finally:
        configure_logging("text")
    if database.is_sqlite:  # SQLite casts anything and divides by zero to NULL: nothing failed
        assert logged == ""
        return
    assert logged.count("inbound SMS not stored") == 2 and "Traceback" in logged
    assert "out of range" in logged and "division by zero" in logged
    assert "712345678" not in logged and "Wanjiku" not in logged and "19301012001" not in logged
