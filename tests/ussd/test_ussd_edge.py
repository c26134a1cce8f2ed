"""The Africa's Talking edge: request checks, answer format, and the end-of-session events."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.ussd import africastalking
from gateway.ussd.messages import BadUssdRequest, UssdAnswer
from registry.models import UssdSessionEvent
from tests.conftest import unreachable_redis


def test_parse_hop_normalises_the_phone_and_splits_inputs():
    request = africastalking.parse_hop({"sessionId": "ATUid_1", "phoneNumber": "254712345678",
                                        "serviceCode": "*384*1234#", "networkCode": "63902", "text": "1*2*3"})
    assert (request.session_id, request.phone, request.service_code, request.network) == (
        "ATUid_1", "+254712345678", "*384*1234#", "63902")
    assert request.inputs == ["1", "2", "3"] and request.text == "1*2*3"


def test_parse_hop_first_hop_has_no_inputs():
    assert africastalking.parse_hop({"sessionId": "a", "phoneNumber": "+254712345678"}).inputs == []


@pytest.mark.parametrize("form, reason", [
    ({"phoneNumber": "+254712345678"}, "sessionId is required"),
    ({"sessionId": "a"}, "phoneNumber is required"),
    ({"sessionId": "  ", "phoneNumber": "+254712345678"}, "sessionId is required"),
])
def test_parse_hop_refuses_missing_fields(form, reason):
    with pytest.raises(BadUssdRequest, match=reason):
        africastalking.parse_hop(form)


def test_render_prefixes():
    assert africastalking.render(UssdAnswer("Hi", end=False))[0] == "CON Hi"
    assert africastalking.render(UssdAnswer("Bye", end=True))[0] == "END Bye"


@pytest.mark.parametrize("missing", ["sessionId", "phoneNumber"])
def test_missing_field_is_400_with_a_one_line_reason(client, missing):
    form = {"sessionId": "x1", "phoneNumber": "+254712345678", "text": ""}
    del form[missing]
    response = client.post("/ussd/africastalking", data=form)
    assert response.status_code == 400
    assert response.get_data(as_text=True) == f"{missing} is required\n"


@pytest.mark.parametrize("phone", ["+14155552671", "0202222222", "07123", "not a phone"])
def test_not_a_kenyan_mobile_gets_a_polite_end(client, phone):
    response = client.post("/ussd/africastalking", data={"sessionId": "x2", "phoneNumber": phone, "text": ""})
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "END Sorry, this service is only for Kenyan mobile numbers."


def test_unknown_provider_is_404(client):
    assert client.post("/ussd/nobody", data={"sessionId": "a", "phoneNumber": "+254712345678"}).status_code == 404


def test_redis_down_gets_a_polite_end_not_an_error(runtime, client):
    runtime.redis = unreachable_redis()
    runtime.extras.pop("elimu.ussd", None)
    response = client.post("/ussd/africastalking", data={"sessionId": "x3", "phoneNumber": "+254712345678"})
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "END Service busy. Please try again in a few minutes."


EVENT = {"sessionId": "ATUid_ev1", "phoneNumber": "+254712345678", "serviceCode": "*384*1234#",
         "networkCode": "63902", "status": "Incomplete", "durationInMillis": "41230", "hopsCount": "4",
         "input": "1*12345678*05092014", "cost": "KES 1.00", "date": "2026-03-02 08:01:00",
         "lastAppResponse": "CON We sent a code"}


def events(runtime) -> list[UssdSessionEvent]:
    with runtime.db.transaction() as session:
        return list(session.scalars(select(UssdSessionEvent)))


def test_session_event_is_stored(runtime, client):
    assert client.post("/ussd/africastalking/events", data=EVENT).status_code == 200
    [row] = events(runtime)
    assert (row.session_id, row.phone, row.status, row.duration_ms, row.hops_count, row.last_input, row.cost) == (
        "ATUid_ev1", "+254712345678", "Incomplete", 41230, 4, "1*[8]*[8]", "KES 1.00")


@pytest.mark.parametrize(("given", "stored"), [
    ("1*12345678*05092014*314159*4826*4826", "1*[8]*[8]*[6]*[4]*[4]"),  # the codes and PIN never stored
    ("4*2*98*00*0", "4*2*98*00*0"),  # menu choices kept: where sessions stop
    ("", None), ("  ", None), ("1**2", "1**2"), ("1*[8]*[4]", "1*[8]*[4]"),
])
def test_a_session_event_keeps_the_menu_choices_and_never_what_was_typed(runtime, client, given, stored):
    assert client.post("/ussd/africastalking/events", data=dict(EVENT, input=given)).status_code == 200
    [row] = events(runtime)
    assert row.last_input == stored


def test_session_event_is_upserted(runtime, client):
    client.post("/ussd/africastalking/events", data=EVENT)
    client.post("/ussd/africastalking/events", data=EVENT)
    client.post("/ussd/africastalking/events", data=dict(EVENT, status="Failed", errorMessage="timeout"))
    [row] = events(runtime)
    assert (row.status, row.error_message) == ("Failed", "timeout")


@pytest.mark.parametrize("form", [
    {},
    {"sessionId": ""},
    {"sessionId": "x" * 500, "hopsCount": "many", "durationInMillis": "-5", "status": "S" * 100,
     "phoneNumber": "garbage" * 20},
])
def test_malformed_events_still_get_200(runtime, client, form):
    assert client.post("/ussd/africastalking/events", data=form).status_code == 200
    for row in events(runtime):
        assert row.hops_count is None and row.duration_ms is None and len(row.session_id) <= 100


def test_a_second_aggregator_is_one_more_adapter(client, monkeypatch):
    """Another gateway's field names (Crossgate-style), plugged in without touching menus or registry."""
    import types

    from gateway.ussd import routes
    from gateway.ussd.messages import UssdRequest
    from registry.identifiers import normalize_msisdn

    other = types.ModuleType("crossgate")
    other.NAME = "crossgate"
    other.parse_hop = lambda form: UssdRequest(
        provider="crossgate", session_id=form["session_id"], phone=normalize_msisdn(form["msisdn"]),
        service_code=form.get("service_code", ""), network=form.get("network_code", ""),
        text=form.get("ussd_string", ""), inputs=form.get("ussd_string", "").split("*"))
    other.render = africastalking.render
    monkeypatch.setitem(routes.ADAPTERS, "crossgate", other)
    first = client.post("/ussd/crossgate", data={"session_id": "cg1", "msisdn": "254712345678", "ussd_string": ""})
    assert first.get_data(as_text=True).startswith("CON Welcome to Elimu")
    again = client.post("/ussd/crossgate", data={"session_id": "cg1", "msisdn": "254712345678", "ussd_string": "4"})
    assert again.get_data(as_text=True).startswith("CON My account")


def test_events_while_the_database_is_down_are_spooled_then_stored(runtime, client):
    from registry.db import Database

    working = runtime.db
    runtime.db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    assert client.post("/ussd/africastalking/events", data=EVENT).status_code == 200
    runtime.db = working
    assert events(runtime) == []
    assert client.post("/ussd/africastalking/events", data=dict(EVENT, sessionId="ATUid_ev2")).status_code == 200
    assert sorted(row.session_id for row in events(runtime)) == ["ATUid_ev1", "ATUid_ev2"]


def _timed_hops() -> float:
    from gateway.metrics import USSD_HOP_SECONDS

    return next(sample.value for sample in USSD_HOP_SECONDS.collect()[0].samples
                if sample.name == "elimu_ussd_hop_seconds_count")


def test_hops_are_counted_in_metrics(client):
    from gateway.metrics import USSD_HOPS

    before, timed = USSD_HOPS.labels("acct", "con")._value.get(), _timed_hops()
    replayed = USSD_HOPS.labels("acct", "replayed")._value.get()
    client.post("/ussd/africastalking", data={"sessionId": "m1", "phoneNumber": "+254712345678", "text": ""})
    client.post("/ussd/africastalking", data={"sessionId": "m1", "phoneNumber": "+254712345678", "text": "4"})
    client.post("/ussd/africastalking", data={"sessionId": "m1", "phoneNumber": "+254712345678", "text": "4"})
    client.post("/ussd/africastalking", data={"sessionId": "m1", "phoneNumber": "+254712345678", "text": "4"})
    assert USSD_HOPS.labels("acct", "con")._value.get() == before + 1
    assert USSD_HOPS.labels("acct", "replayed")._value.get() == replayed + 2
    assert _timed_hops() == timed + 4


def test_a_session_event_with_control_characters_is_stored_without_them(integration_runtime):
    """PostgreSQL refuses a NUL: the event was taken for an outage, spooled, and dropped on replay."""
    from gateway.app import create_app

    client = create_app(runtime=integration_runtime).test_client()
    response = client.post("/ussd/africastalking/events",
                           data=dict(EVENT, sessionId="ATUid_\x00ev9", errorMessage="time\x00out\x1b[31m"))
    assert response.status_code == 200 and b"spooled" not in response.data
    [row] = events(integration_runtime)
    assert (row.session_id, row.error_message) == ("ATUid_ev9", "timeout[31m")
