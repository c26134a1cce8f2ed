"""The callback fast path (``gateway.fastpath``) answers exactly as the Flask views behind it would.

Each request goes once through the app as deployed (fast path first) and once straight to Flask's
own ``wsgi_app``; status, body, content type and the echoed request id must agree. What the fast
path does not take (other methods, paths, bodies) must reach Flask untouched.
"""

from __future__ import annotations

import itertools
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Request

from gateway.app import create_app
from gateway.fastpath import CallbackFastPath, first_values
from gateway.runtime import Runtime
from gateway.ussd import africastalking
from tests.conftest import make_settings

TOKEN = "s3cret-token-value"
_phones = itertools.count(700_000_001)


def _paths(runtime: Runtime, tmp_path, *, sealed: bool = True, **overrides) -> tuple[CallbackFastPath, Client, Client]:
    """The fast path and a client of each path; ``sealed``: the fast path's client fails the test
    if a request gets through to Flask (so the answers compared really come from both paths)."""
    settings = make_settings(tmp_path, runtime.db, **overrides)
    app = create_app(runtime=Runtime.build(settings, db=runtime.db, redis=runtime.redis))
    fast = app.wsgi_app
    assert isinstance(fast, CallbackFastPath)
    via_flask = Client(fast.downstream)
    if sealed:
        fast.downstream = lambda environ, start_response: pytest.fail(f"{environ['PATH_INFO']} reached Flask")
    return fast, Client(fast), via_flask


def _hop(**fields: str) -> dict[str, str]:
    """A first hop from a phone of its own (so neither path meets the other's resume point)."""
    phone = f"+254{next(_phones)}"
    return {"sessionId": f"s-{phone}", "serviceCode": "*384*1234#", "phoneNumber": phone, "networkCode": "63902",
            "text": ""} | fields


def _same(fast: Client, flask: Client, path: str, make_form, **kwargs) -> tuple:
    answers = []
    for client in (fast, flask):
        response = client.post(path, data=make_form(), headers={"X-Request-ID": "rid-7"}, **kwargs)
        answers.append((response.status, response.get_data(as_text=True), response.content_type,
                        response.headers.get("X-Request-ID"), response.headers.get("Retry-After")))
    assert answers[0] == answers[1]
    return answers[0]


@pytest.mark.parametrize(
    "make_form",
    [
        _hop,  # a new session: the main menu
        lambda: _hop(sessionId=""),  # 400: sessionId is required
        lambda: _hop(phoneNumber=""),  # 400: phoneNumber is required
        lambda: _hop(phoneNumber="+14155552671"),  # END: not a Kenyan number
        lambda: _hop(text="9*9*9"),  # a new session whatever the text says
    ],
)
def test_a_hop_is_answered_as_flask_answers_it(runtime, tmp_path, make_form):
    fast, via_fast, via_flask = _paths(runtime, tmp_path)
    _same(via_fast, via_flask, "/ussd/africastalking", make_form)


def test_the_webhook_checks_answer_as_flask_does(runtime, tmp_path):
    fast, via_fast, via_flask = _paths(runtime, tmp_path, webhook_token=TOKEN, allowed_networks=("10.0.0.0/8",))
    inside = {"environ_base": {"REMOTE_ADDR": "10.1.2.3"}}
    for query in ("", "?token=wrong", f"?token={TOKEN}", f"?token=wrong&token={TOKEN}", f"?token={TOKEN}&token=x"):
        _same(via_fast, via_flask, "/ussd/africastalking" + query, _hop, **inside)
    _same(via_fast, via_flask, f"/ussd/africastalking?token={TOKEN}", _hop)  # outside the networks: 403


@pytest.mark.parametrize(("remote", "admitted"), [("::ffff:196.201.214.5", True), ("::ffff:196.201.215.5", False),
                                                  ("196.201.214.5", True), ("2001:db8::5", False)])
def test_an_ipv4_mapped_address_is_checked_as_its_ipv4_address_on_both_paths(runtime, tmp_path, remote, admitted):
    """A dual-stack listener reports an IPv4 client as ``::ffff:a.b.c.d``: an allowed IPv4 network admits it."""
    _, via_fast, via_flask = _paths(runtime, tmp_path, allowed_networks=("196.201.214.0/24",))
    status = _same(via_fast, via_flask, "/ussd/africastalking", _hop, environ_base={"REMOTE_ADDR": remote})[0]
    assert (status == "200 OK") is admitted, status


def test_a_failure_past_the_handler_is_the_busy_end_on_both_paths(runtime, tmp_path, monkeypatch):
    fast, via_fast, via_flask = _paths(runtime, tmp_path)

    def broken(answer):
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(africastalking, "render", broken)
    _same(via_fast, via_flask, "/ussd/africastalking", _hop)
    assert via_fast.post("/ussd/africastalking", data=_hop()).get_data(as_text=True).startswith("END ")


_ids = itertools.count(1)


def _inbound(**fields: str) -> dict[str, str]:
    return {"from": f"+254{next(_phones)}", "to": "22252", "text": "KCSE 36611030002 Wanjiku",
            "date": "2026-01-09 10:00:00", "id": f"ATXid_fast{next(_ids)}", "networkCode": "63902"} | fields


def test_an_inbound_sms_is_answered_as_flask_answers_it(runtime, tmp_path):
    fast, via_fast, via_flask = _paths(runtime, tmp_path)
    assert _same(via_fast, via_flask, "/sms/africastalking/inbound", _inbound)[:2] == ("200 OK", "OK\n")
    repeat = _inbound()
    assert via_flask.post("/sms/africastalking/inbound", data=repeat).get_data() == b"OK\n"
    _same(via_fast, via_flask, "/sms/africastalking/inbound", lambda: repeat)  # both: OK (repeat)
    for fields, expected in (({"id": ""}, ("400 BAD REQUEST", "id is empty\n")),
                             ({"from": "not a number"}, ("400 BAD REQUEST", "from is not a phone number\n")),
                             ({"text": ""}, ("200 OK", "OK\n"))):  # an empty text is answered with help
        answer = _same(via_fast, via_flask, "/sms/africastalking/inbound", lambda f=fields: _inbound(**f))
        assert answer[:2] == expected


def test_an_inbound_sms_in_an_outage_is_a_503_to_retry_on_both_paths(runtime, tmp_path, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from gateway.sms import routes

    fast, via_fast, via_flask = _paths(runtime, tmp_path)

    def down(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(routes, "receive", down)
    answer = _same(via_fast, via_flask, "/sms/africastalking/inbound", _inbound)
    assert answer[0].startswith("503") and answer[4] == "60"


def test_what_the_fast_path_does_not_take_reaches_flask(runtime, tmp_path):
    fast, via_fast, via_flask = _paths(runtime, tmp_path, sealed=False, max_body_bytes=1024)
    taken = []
    real = fast._view_for
    fast._view_for = lambda environ: taken.append(view := real(environ)) or view  # type: ignore[method-assign]
    assert via_fast.get("/ussd/africastalking").status_code == 405
    assert via_fast.post("/ussd/africastalking", data=_hop(text="1" * 5000)).status_code == 413
    assert via_fast.post("/ussd/africastalking/events", data={"sessionId": "s"}).status_code == 200
    assert via_fast.post("/sms/africastalking/delivery", data={"id": "x", "status": "Success"}).status_code == 200
    assert via_fast.post("/ussd/nosuchprovider", data=_hop()).status_code == 404
    assert via_fast.post("/ussd/africastalking", json=_hop()).status_code == 400  # not a form: Flask's 400
    multipart = via_fast.post("/ussd/africastalking", data=_hop(), content_type="multipart/form-data")
    assert multipart.status_code == 200 and multipart.get_data(as_text=True).startswith("CON ")
    assert taken == [None] * 7


@pytest.mark.parametrize("path", ["/ussd/africastalking", "/sms/africastalking/inbound", "/ussd/africastalking/events",
                                  "/sms/africastalking/delivery", "/ussd/generic"])
def test_a_form_that_is_not_utf8_is_a_400_that_says_so(runtime, tmp_path, path):
    """Raw bytes that are not UTF-8 (a form's are percent-encoded): werkzeug would read an empty
    form, and the answer would name missing fields. The webhook checks still come first."""
    _, via_fast, _ = _paths(runtime, tmp_path, sealed=False, webhook_token=TOKEN)
    body = b"sessionId=s\xff\xfe&phoneNumber=%2B254712345678&from=%2B254712345678&id=x&text=KCSE\xe9&status=Success"
    response = via_fast.post(f"{path}?token={TOKEN}", data=body, content_type="application/x-www-form-urlencoded")
    assert (response.status_code, response.get_data(as_text=True)) == (400, "the body is not UTF-8 form data\n")
    assert response.headers["X-Request-ID"]
    refused = via_fast.post(path, data=body, content_type="application/x-www-form-urlencoded")
    assert (refused.status_code, refused.get_data(as_text=True)) == (403, "Forbidden\n")


def test_a_callbacks_http_errors_are_one_line_of_text(runtime, tmp_path):
    """A provider reads a callback's answer as text: Flask's HTTP errors on callback paths are one
    plain line (with their headers, such as Allow); elsewhere they stay JSON."""
    _, via_fast, _ = _paths(runtime, tmp_path, sealed=False, max_body_bytes=1024)
    too_big = via_fast.post("/ussd/africastalking", data=_hop(text="1" * 5000))
    assert too_big.status_code == 413 and too_big.mimetype == "text/plain"
    assert too_big.get_data(as_text=True).startswith("Request Entity Too Large: ")
    assert too_big.get_data(as_text=True).count("\n") == 1
    wrong_method = via_fast.get("/sms/africastalking/inbound")
    assert (wrong_method.status_code, wrong_method.mimetype) == (405, "text/plain")
    assert "POST" in wrong_method.headers["Allow"]
    elsewhere = via_fast.get("/no/such/page")
    assert elsewhere.status_code == 404 and elsewhere.get_json()["error"] == "Not Found"


@pytest.mark.parametrize("encoded", ["a=1&a=2&b=&c=%2B254&d=x+y", "bad=%ff&ok=1", "token=a%26b&&=x&k", "",
                                     "a+b=1&a%20b=2&%61=3&a=4&=&==&x=%&y=%2&z=%zz&w=a=b", "p=%C3%A9%E2%82&q=%e2%82%ac",
                                     "phoneNumber=%2B254712345678&text=1%2a12345678%2A05092014&serviceCode=%2A384%2A1234%23",
                                     "a=%00%7f%7F%80%41%4g&b=%2A%C3%A9%2a&c=%%2A&d=%2A%"])
def test_fields_are_read_as_werkzeug_reads_them(encoded):
    args = Request(EnvironBuilder(query_string=encoded).get_environ()).args
    assert first_values(encoded) == {name: args.get(name) for name in args}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet="ab+%=2FfC3A9x &07dE", max_size=8),
                          st.text(alphabet="ab+%=2FfC3A9x &;07dE", max_size=10)), max_size=6))
def test_any_form_is_read_as_werkzeug_reads_it(pairs):
    encoded = "&".join(f"{name}={value}" for name, value in pairs)
    args = Request(EnvironBuilder(query_string=encoded).get_environ()).args
    assert first_values(encoded) == {name: args.get(name) for name in args}


def _call(fast: CallbackFastPath, path: str, body: bytes, **environ_changes: str) -> tuple[int, str]:
    import io

    environ = EnvironBuilder(path=path, method="POST", data=body,
                             content_type="application/x-www-form-urlencoded").get_environ()
    environ.update(environ_changes)
    environ["wsgi.input"] = io.BytesIO(body)
    seen: list[str] = []
    chunks = fast(environ, lambda status, headers: seen.append(status))
    return int(seen[0].split()[0]), b"".join(chunks).decode()


@pytest.mark.parametrize("path", ["/ussd/africastalking", "/sms/africastalking/inbound"])
def test_a_body_cut_short_of_its_length_is_refused_not_acted_on(runtime, tmp_path, path):
    """The client went away mid-body: acting on part of a text (``KCSE 1930``) or a hop would be
    acting on what was never sent."""
    fast, _, _ = _paths(runtime, tmp_path)
    body = urlencode({"from": "+254712345678", "id": "ATXid_cut", "text": "KCSE 19301012001 Wanjiku"} | _hop())
    status, text = _call(fast, path, body.encode()[:60], CONTENT_LENGTH=str(len(body)))
    assert (status, text) == (400, f"the body ended after 60 of its {len(body)} bytes\n")


def test_a_chunked_callback_is_read_to_its_end_and_refused_over_the_limit(runtime, tmp_path):
    fast, _, _ = _paths(runtime, tmp_path, max_body_bytes=1024)
    chunked = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"}
    status, text = _call(fast, "/ussd/africastalking", urlencode(_hop()).encode(), **chunked)
    assert status == 200 and text.startswith("CON Welcome to Elimu")
    status, text = _call(fast, "/ussd/africastalking", urlencode(_hop(text="1" * 5000)).encode(), **chunked)
    assert (status, text) == (413, "the body is over 1024 bytes\n")


def _malformed() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("elimu_callbacks_refused_total", {"reason": "malformed"}) or 0.0


def test_every_400_of_a_hop_is_counted_malformed_on_both_paths(runtime, tmp_path):
    """A hop missing a field, a body not UTF-8 or cut short, a body that is not a form: each 400 was
    counted nowhere, so a proxy mangling AT's hops showed on /metrics as hops that never came."""
    _, via_fast, via_flask = _paths(runtime, tmp_path, sealed=False)
    fast, _, _ = _paths(runtime, tmp_path)
    before = _malformed()
    for client in (via_fast, via_flask):
        for form in (_hop(sessionId=""), _hop(phoneNumber="")):
            assert client.post("/ussd/africastalking", data=form).status_code == 400
        assert client.post("/ussd/africastalking", json=_hop()).status_code == 400  # not a form
    assert _malformed() - before == 6
    body = urlencode(_hop()).encode()
    for path in ("/ussd/africastalking", "/sms/africastalking/inbound", "/ussd/africastalking/events"):
        assert via_fast.post(path, data=b"sessionId=s\xff", content_type="application/x-www-form-urlencoded"
                             ).status_code == 400
        assert _call(fast, path, body[:30], CONTENT_LENGTH=str(len(body)))[0] == 400
    assert _malformed() - before == 12
    assert via_fast.post("/ussd/africastalking", data=_hop()).status_code == 200
    assert _malformed() - before == 12  # a good hop is not



def _too_large() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("elimu_callbacks_refused_total", {"reason": "too_large"}) or 0.0


def test_every_413_of_a_callback_is_counted_too_large_on_both_paths(runtime, tmp_path):
    """A USSD or SMS callback over ELIMU_MAX_BODY_BYTES, refused 413 by Flask (a body of a stated
    length) or by the fast path (a chunked one), was counted nowhere."""
    fast, via_fast, via_flask = _paths(runtime, tmp_path, sealed=False, max_body_bytes=1024)
    big = _hop(text="1" * 5000) | {"from": "+254712345678", "id": "ATXid_big"}
    before, malformed = _too_large(), _malformed()
    for client in (via_fast, via_flask):
        for path in ("/ussd/africastalking", "/sms/africastalking/inbound"):
            assert client.post(path, data=big).status_code == 413
    assert _too_large() - before == 4
    chunked = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"}
    for path in ("/ussd/africastalking", "/sms/africastalking/inbound"):
        assert _call(fast, path, urlencode(big).encode(), **chunked)[0] == 413
    assert _too_large() - before == 6
    assert via_fast.post("/ussd/africastalking", data=_hop()).status_code == 200
    assert via_fast.post("/no/such/page", data="x" * 5000).status_code == 413  # not a callback: not counted
    assert (_too_large() - before, _malformed() - malformed) == (6, 0)
