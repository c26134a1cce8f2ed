"""The USSD edge as telcos and phones use it (the USSD edge review): digits of other scripts,
methods and content types AT never sends, and twins of a hop racing past the rate limit."""

from __future__ import annotations

import threading

import pytest

from gateway.app import create_app
from gateway.config import ConfigError, ussd_code_setting
from gateway.runtime import Runtime
from gateway.ussd import africastalking
from gateway.ussd.generic import CROSSGATE, GenericAdapter
from gateway.ussd.routes import hop_handler
from tests.conftest import make_settings

MY_ACCOUNT = "CON My account\n1. Change PIN\n2. Language\n3. Forgot PIN\n0. Back\n00. Home"


def _hop(client, session: str, text: str, phone: str = "+254712000919"):
    return client.post("/ussd/africastalking", data={"sessionId": session, "phoneNumber": phone,
                                                     "serviceCode": "*384*1234#", "text": text})


@pytest.mark.parametrize("four", ["\u0664", "\u06f4", "\uff14", "\u096a"])  # Arabic-Indic, Persian, full-width, Devanagari
def test_digits_of_other_scripts_are_read_as_the_digits_they_are(client, four):
    """A phone set to Arabic (or with a full-width keyboard) sends its own digits; the menus read
    ASCII digits, so the choice came back 'Invalid choice.' and no PIN or code could be typed."""
    _hop(client, f"d-{ord(four)}", "")
    assert _hop(client, f"d-{ord(four)}", four).get_data(as_text=True) == MY_ACCOUNT
    assert _hop(client, f"d-{ord(four)}", f"{four}*\uff12").get_data(as_text=True).startswith("CON Choose language")


@pytest.mark.parametrize("parse", [africastalking.parse_hop,
                                   lambda form: GenericAdapter(CROSSGATE).parse_hop(
                                       {"session_id": form["sessionId"], "msisdn": form["phoneNumber"],
                                        "ussd_string": form["text"]})])
def test_both_adapters_give_the_menus_ascii_digits(parse):
    request = parse({"sessionId": "a", "phoneNumber": "+254712000919", "text": "\u0661*\uff10\uff17*12#3"})
    assert (request.text, request.inputs) == ("1*07*12#3", ["1", "07", "12#3"])


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
def test_at_hop_by_any_method_but_post_is_405_naming_post(client, method):
    """AT always POSTs: a HEAD was read as a hop without fields (400 'sessionId is required'), and
    the 405 to a GET named no allowed method (HTTP requires ``Allow`` on a 405)."""
    response = client.open("/ussd/africastalking", method=method,
                           query_string={"sessionId": "m-1", "phoneNumber": "+254712000919", "text": ""})
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) - {"OPTIONS"} == {"POST"}


def test_generic_hop_still_answers_a_get(client):
    response = client.get("/ussd/generic", query_string={"session_id": "g-1", "msisdn": "0712000919"})
    assert response.status_code == 200 and response.get_data(as_text=True).startswith("CON ")


@pytest.mark.parametrize("path", ["/ussd/africastalking", "/ussd/generic"])
def test_a_hop_that_is_not_a_form_is_400_naming_the_form(client, path):
    """A hop sent as JSON (or as text) was answered 'sessionId is required', though it carried one."""
    fields = {"sessionId": "j-1", "session_id": "j-1", "phoneNumber": "+254712000919", "msisdn": "0712000919"}
    for response, sent in [(client.post(path, json=fields), "application/json"),
                           (client.post(path, data="sessionId=j-1&phoneNumber=0712000919", content_type="text/plain"),
                            "text/plain")]:
        assert response.status_code == 400
        assert response.get_data(as_text=True) == (
            f"the body must be a form (application/x-www-form-urlencoded), not {sent}\n")


def test_a_hop_posted_as_multipart_or_without_a_body_is_read_as_before(client):
    multipart = client.post("/ussd/africastalking", content_type="multipart/form-data",
                            data={"sessionId": "mp-1", "phoneNumber": "+254712000919", "text": ""})
    assert multipart.status_code == 200 and multipart.get_data(as_text=True).startswith("CON ")
    assert client.post("/ussd/africastalking").get_data(as_text=True) == "sessionId is required\n"
    query = client.post("/ussd/generic", query_string={"session_id": "q-1", "msisdn": "0712000919"},
                        data="", content_type="text/plain")  # a GET-style gateway's fields, POSTed
    assert query.status_code == 200 and query.get_data(as_text=True).startswith("CON ")


def test_a_twin_of_a_hop_in_flight_is_not_counted_against_the_hop_limit(runtime, tmp_path, monkeypatch):
    """AT resends a hop it waited long for while the first is still acting. The twin was counted
    (a retry found in the record is not), so at the limit the twin got 'Too many requests' for
    the hop the first was answering, and below it each twin used up the phone's quota."""
    limited = Runtime.build(make_settings(tmp_path, runtime.db, ussd_hops_per_minute=2), db=runtime.db,
                            redis=runtime.redis)
    client = create_app(runtime=limited).test_client()
    assert _hop(client, "tw-1", "").status_code == 200  # the phone's first hop of the minute
    handler = hop_handler(limited)
    inside, waiting = threading.Event(), threading.Event()
    real_step, real_wait = handler.engine.step, handler.store.wait_for_answer
    # the first hop acts (menu step) only once its twin waits for its answer
    monkeypatch.setattr(handler.engine, "step", lambda *a, **k: (inside.set(), waiting.wait(10), real_step(*a, **k))[2])
    monkeypatch.setattr(handler.store, "wait_for_answer", lambda *a, **k: (waiting.set(), real_wait(*a, **k))[1])
    answers: dict[str, str] = {}

    def hop(name: str) -> None:
        answers[name] = _hop(create_app(runtime=limited).test_client(), "tw-1", "4").get_data(as_text=True)

    first = threading.Thread(target=hop, args=("first",))
    first.start()
    assert inside.wait(10)
    hop("twin")
    first.join(10)
    assert waiting.is_set() and answers == {"first": MY_ACCOUNT, "twin": MY_ACCOUNT}


@pytest.mark.parametrize("session_id", ["ATUid_1\n2026-12-05 ERROR forged line", "ATUid_\x00", "ATUid_\x1b[2J"])
def test_a_session_id_with_a_control_character_is_400(client, session_id):
    """A session id is written into log lines as it came: one carrying a newline forged a log line
    (text format). AT's and the GET gateways' ids are printable; anything else is refused."""
    response = client.post("/ussd/africastalking", data={"sessionId": session_id, "phoneNumber": "+254712000919"})
    assert (response.status_code, response.get_data(as_text=True)) == (400, "sessionId has a control character\n")
    generic = client.get("/ussd/generic", query_string={"session_id": session_id, "msisdn": "0712000919"})
    assert (generic.status_code, generic.get_data(as_text=True)) == (400, "session_id has a control character\n")


@pytest.mark.parametrize("code", ["*\u0663\u0668\u0664*1234#", "*\uff13\uff18\uff14*1234#"])
def test_a_ussd_code_in_digits_of_another_script_is_refused(code):
    """The code goes into screens (the slow-down END as it is) and texts: ``\\d`` took any script's
    digits, so Arabic-Indic or full-width digits passed the check and left printable ASCII."""
    with pytest.raises(ConfigError, match="ELIMU_USSD_CODE must be a USSD code"):
        ussd_code_setting({"ELIMU_USSD_CODE": code})
