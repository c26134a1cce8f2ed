"""The second aggregator: a generic CON/END gateway (GET or POST, configurable field names) reaches the same
menus as Africa's Talking, screen for screen."""

from __future__ import annotations

import pytest

from gateway.app import create_app
from gateway.runtime import Runtime
from gateway.ussd.generic import parse_fields
from tests.conftest import make_settings

JAZA = "session=SESSIONID,phone=MSISDN,text=INPUT,service=USSDCODE,network=NETWORK"


def _client(runtime, tmp_path, fields: str = ""):
    settings = make_settings(tmp_path, runtime.db, generic_ussd_fields=fields)
    return create_app(runtime=Runtime.build(settings, db=runtime.db, redis=runtime.redis)).test_client()


def test_crossgate_names_by_get_follow_the_same_dialogue_as_at(runtime, tmp_path):
    client = _client(runtime, tmp_path)
    at_screens, generic_screens = [], []
    for text in ["", "4", "4*2"]:  # main menu, my account, language
        at = client.post("/ussd/africastalking", data={"sessionId": "at-1", "phoneNumber": "+254712000333",
                                                        "serviceCode": "*384*1234#", "text": text})
        gen = client.get("/ussd/generic", query_string={"session_id": "gw-1", "msisdn": "254712000444",
                                                        "ussd_string": text, "service_code": "*384*1234#",
                                                        "network_code": "63902"})
        assert at.status_code == gen.status_code == 200
        assert gen.mimetype == "text/plain"
        at_screens.append(at.get_data(as_text=True))
        generic_screens.append(gen.get_data(as_text=True))
    assert generic_screens == at_screens
    assert generic_screens[0].startswith("CON ")


def test_configured_field_names_by_post(runtime, tmp_path):
    client = _client(runtime, tmp_path, JAZA)
    response = client.post("/ussd/generic", data={"SESSIONID": "j-1", "MSISDN": "0712000555", "INPUT": "",
                                                  "USSDCODE": "*384*1234#"})
    assert response.status_code == 200 and response.get_data(as_text=True).startswith("CON ")


def test_missing_fields_get_a_400_naming_the_field(runtime, tmp_path):
    client = _client(runtime, tmp_path, JAZA)
    response = client.get("/ussd/generic", query_string={"MSISDN": "0712000555"})
    assert response.status_code == 400 and b"SESSIONID is required" in response.data


def test_foreign_number_gets_a_polite_end(runtime, tmp_path):
    client = _client(runtime, tmp_path)
    response = client.get("/ussd/generic", query_string={"session_id": "x", "msisdn": "+14155552671"})
    assert response.status_code == 200 and response.get_data(as_text=True).startswith("END ")


def test_at_stays_post_only(client):
    assert client.get("/ussd/africastalking?sessionId=x&phoneNumber=0712000555").status_code == 405


def test_field_spec_validation():
    assert parse_fields("")["phone"] == "msisdn"
    assert parse_fields(JAZA)["text"] == "INPUT"
    with pytest.raises(ValueError, match="role=name"):
        parse_fields("sess=ID")
