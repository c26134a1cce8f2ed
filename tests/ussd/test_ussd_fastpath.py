"""The hop fast path (``gateway.ussd.fastpath``) answers exactly as the Flask view behind it would.

Each request goes once through the app as deployed (fast path first) and once straight to Flask's
own ``wsgi_app``; status, body, content type and the echoed request id must agree. What the fast
path does not take (other methods, paths, bodies) must reach Flask untouched.
"""

from __future__ import annotations

import itertools

import pytest
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Request

from gateway.app import create_app
from gateway.runtime import Runtime
from gateway.ussd import africastalking
from gateway.ussd.fastpath import HopFastPath, first_values
from tests.conftest import make_settings

TOKEN = "s3cret-token-value"
_phones = itertools.count(700_000_001)


def _paths(runtime: Runtime, tmp_path, **overrides) -> tuple[HopFastPath, Client, Client]:
    settings = make_settings(tmp_path, runtime.db, **overrides)
    app = create_app(runtime=Runtime.build(settings, db=runtime.db, redis=runtime.redis))
    fast = app.wsgi_app
    assert isinstance(fast, HopFastPath)
    return fast, Client(fast), Client(fast.downstream)


def _hop(**fields: str) -> dict[str, str]:
    """A first hop from a phone of its own (so neither path meets the other's resume point)."""
    phone = f"+254{next(_phones)}"
    return {"sessionId": f"s-{phone}", "serviceCode": "*384*1234#", "phoneNumber": phone, "networkCode": "63902",
            "text": ""} | fields


def _same(fast: Client, flask: Client, path: str, make_form, **kwargs) -> None:
    answers = []
    for client in (fast, flask):
        response = client.post(path, data=make_form(), headers={"X-Request-ID": "rid-7"}, **kwargs)
        answers.append((response.status, response.get_data(as_text=True), response.content_type,
                        response.headers.get("X-Request-ID")))
    assert answers[0] == answers[1]


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


def test_a_failure_past_the_handler_is_the_busy_end_on_both_paths(runtime, tmp_path, monkeypatch):
    fast, via_fast, via_flask = _paths(runtime, tmp_path)

    def broken(answer):
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(africastalking, "render", broken)
    _same(via_fast, via_flask, "/ussd/africastalking", _hop)
    assert via_fast.post("/ussd/africastalking", data=_hop()).get_data(as_text=True).startswith("END ")


def test_what_the_fast_path_does_not_take_reaches_flask(runtime, tmp_path):
    fast, via_fast, via_flask = _paths(runtime, tmp_path, max_body_bytes=1024)
    taken = []
    real = fast._adapter_for
    fast._adapter_for = lambda environ: taken.append(adapter := real(environ)) or adapter  # type: ignore[method-assign]
    assert via_fast.get("/ussd/africastalking").status_code == 405
    assert via_fast.post("/ussd/africastalking", data=_hop(text="1" * 5000)).status_code == 413
    assert via_fast.post("/ussd/africastalking/events", data={"sessionId": "s"}).status_code == 200
    assert via_fast.post("/ussd/nosuchprovider", data=_hop()).status_code == 404
    assert via_fast.post("/ussd/africastalking", json=_hop()).status_code == 400  # not a form: Flask's 400
    multipart = via_fast.post("/ussd/africastalking", data=_hop(), content_type="multipart/form-data")
    assert multipart.status_code == 200 and multipart.get_data(as_text=True).startswith("CON ")
    assert taken == [None] * 6
    _same(via_fast, via_flask, "/ussd/africastalking", lambda: b"sessionId=\xff\xfe&phoneNumber=%2B254712345678",
          content_type="application/x-www-form-urlencoded")  # not UTF-8: read, then handed to Flask


@pytest.mark.parametrize("encoded", ["a=1&a=2&b=&c=%2B254&d=x+y", "bad=%ff&ok=1", "token=a%26b&&=x&k", ""])
def test_fields_are_read_as_werkzeug_reads_them(encoded):
    args = Request(EnvironBuilder(query_string=encoded).get_environ()).args
    assert first_values(encoded) == {name: args.get(name) for name in args}
