"""The web phone's API and the terminal phone, against a real HTTP server with the embedded SMS worker."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import threading
from collections.abc import Iterator
from datetime import date

import pytest
from click.testing import CliRunner
from flask import Flask
from werkzeug.serving import make_server

from gateway.app import create_app
from gateway.cli.simulate import Phone, simulate
from gateway.runtime import Runtime
from registry.models import Guardian, GuardianLink, Institution, Learner
from tests.conftest import make_settings

PARENT = "+254712000101"
STRANGER = "+254712000999"
TOKEN = "s3cret-token-value"


def _seed(runtime: Runtime) -> None:
    with runtime.db.transaction() as s:
        school = Institution(code="WE4T", name="Kamukunji Primary", county_code="047")
        learner = Learner(upi="KX7P9Q", first_name="Jane", last_name="Wanjiku", date_of_birth=date(2013, 9, 5),
                          gender="F", birth_certificate_no="556677", grade="Grade 6", institution=school)
        parent = Guardian(phone=PARENT, name="Mary Wanjiku")
        s.add_all([school, learner, parent, GuardianLink(learner=learner, guardian=parent, relationship_="mother")])


@pytest.fixture
def server(runtime):
    from workers.embedded import start_embedded_worker

    _seed(runtime)
    with _serving(create_app(runtime=runtime)) as url:
        worker = start_embedded_worker(runtime)
        yield url
        worker.stop(timeout=10)


def test_page_is_served_in_development(client):
    response = client.get("/simulator")
    assert response.status_code == 200
    assert b"phone simulator" in response.data and b"*384*1234#" in response.data


def test_the_sms_example_on_the_page_is_a_demo_candidate_with_released_results(client):
    """A newcomer types the example first: it must answer with grades, not 'no such result'."""
    from registry.demo import FEATURED, RELEASED

    example = re.search(rb'id="smstext" placeholder="e\.g\. (\w+) (\d+) (\w+)"', client.get("/simulator").data)
    assert example, "the page has no SMS example"
    exam, number, name = (part.decode() for part in example.groups())
    assert any((exam, number) == (e, n) and (e, y) in RELEASED and name in (d.first, d.middle, d.last)
               for d in FEATURED for e, y, n in d.results)


def test_simulator_is_off_in_production_unless_enabled(runtime, tmp_path):
    settings = make_settings(tmp_path, runtime.db, simulator_enabled=False)
    client = create_app(runtime=Runtime.build(settings, db=runtime.db, redis=runtime.redis)).test_client()
    assert client.get("/simulator").status_code == 404
    assert client.get("/simulator/api/inbox?phone=0712000101").status_code == 404


def test_api_refuses_bad_phone(client):
    response = client.post("/simulator/api/ussd", json={"phone": "020 2222222", "text": ""})
    assert response.status_code == 400 and "landline" in response.json["reason"]
    # phonenumbers' own "(1) The string supplied did not seem to be a phone number." came through
    response = client.post("/simulator/api/sms", json={"phone": "my phone", "text": "HELP"})
    assert response.status_code == 400 and response.json["reason"] == (
        "phone: not a phone number (it has no digits); a Kenyan mobile number is 07... or 01... (10 digits), "
        "or +2547... or +2541...")


@pytest.mark.parametrize("path", ["/simulator/api/ussd", "/simulator/api/sms"])
@pytest.mark.parametrize("body", ["[1]", '"x"', "3", "null", "[]", "{", ""])
def test_api_refuses_a_body_that_is_no_json_object(client, path, body):
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == 400, response.data
    assert "JSON object" in response.json["reason"]


@pytest.mark.parametrize("path", ["/simulator/api/ussd", "/simulator/api/sms"])
@pytest.mark.parametrize("fields", [{"phone": 712000101}, {"phone": ["0712000101"]},
                                    {"phone": "0712000101", "text": ["HELP"]}])
def test_api_refuses_fields_that_are_no_strings(client, path, fields):
    response = client.post(path, json=fields)
    assert response.status_code == 400, response.data
    assert "string" in response.json["reason"]
    session = client.post("/simulator/api/ussd", json={"phone": "0712000101", "text": "", "session": {"id": 1}})
    assert session.status_code == 400 and "session" in session.json["reason"]


def _production(runtime: Runtime, tmp_path, **overrides):
    settings = dataclasses.replace(make_settings(tmp_path, runtime.db, simulator_enabled=True, **overrides),
                                   env="production")
    return create_app(runtime=Runtime.build(settings, db=runtime.db, redis=runtime.redis)).test_client()


def test_simulator_stays_off_in_production_without_the_webhook_token(runtime, tmp_path, caplog):
    """ELIMU_SIMULATOR=true outside development would let anyone act as any phone: without
    ELIMU_WEBHOOK_TOKEN it is ignored, and the log says why."""
    with caplog.at_level(logging.WARNING, logger="gateway.simulator"):
        client = _production(runtime, tmp_path)
    assert any("ELIMU_WEBHOOK_TOKEN" in r.getMessage() for r in caplog.records)
    assert client.get("/simulator").status_code == 404
    assert client.post("/simulator/api/ussd", json={"phone": PARENT, "text": ""}).status_code == 404
    assert client.post("/simulator/api/sms", json={"phone": PARENT, "text": "HELP"}).status_code == 404
    assert client.get(f"/simulator/api/inbox?phone={PARENT}").status_code == 404


def test_simulator_in_production_is_checked_like_a_callback(runtime, tmp_path):
    """With the token set, every simulator request needs it (and the allowed networks), as a callback does."""
    client = _production(runtime, tmp_path, webhook_token=TOKEN, allowed_networks=("10.0.0.0/8",))
    inside = {"REMOTE_ADDR": "10.1.2.3"}
    for query in ("", "?token=wrong"):
        assert client.get("/simulator" + query, environ_base=inside).status_code == 403
        hop = client.post("/simulator/api/ussd" + query, json={"phone": PARENT, "text": ""}, environ_base=inside)
        assert hop.status_code == 403 and hop.data == b"Forbidden\n"
        sms = client.post("/simulator/api/sms" + query, json={"phone": PARENT, "text": "HELP"}, environ_base=inside)
        assert sms.status_code == 403
        assert client.get(f"/simulator/api/inbox?phone={PARENT}&token=wrong", environ_base=inside).status_code == 403
    outside = client.post(f"/simulator/api/ussd?token={TOKEN}", json={"phone": PARENT, "text": ""})
    assert outside.status_code == 403
    assert client.get(f"/simulator?token={TOKEN}", environ_base=inside).status_code == 200
    hop = client.post(f"/simulator/api/ussd?token={TOKEN}", json={"phone": PARENT, "text": ""}, environ_base=inside)
    assert hop.status_code == 200 and hop.json["body"].startswith("CON ")
    inbox = client.get(f"/simulator/api/inbox?phone={PARENT}&token={TOKEN}", environ_base=inside)
    assert inbox.status_code == 200


def test_the_page_passes_its_token_on_to_the_api(runtime, tmp_path):
    page = _production(runtime, tmp_path, webhook_token=TOKEN).get(f"/simulator?token={TOKEN}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'get("token")' in html and html.count("withToken(") == 2  # post and the inbox


def test_api_dial_shows_main_menu(client):
    response = client.post("/simulator/api/ussd", json={"phone": "0712000101", "text": ""})
    assert response.status_code == 200
    assert response.json["body"].startswith("CON ")
    assert response.json["session"].startswith("sim-")


def test_terminal_phone_activates_a_parent_end_to_end(server):
    """What the README promises: the terminal phone activates a parent, OTP and UPI arriving by SMS."""
    phone = Phone(server, PARENT, "*384*1234#", token=None)
    session, inputs = "sim-activation-1", []

    def answer(value: str | None = None) -> str:
        if value is not None:
            inputs.append(value)
        return phone.hop(session, inputs)

    assert answer().startswith("CON ")
    assert "birth certificate" in answer("1").lower()
    assert "date of birth" in answer("556677").lower()
    assert "code" in answer("05092013").lower()
    sms = phone.new_messages(wait=15)
    otp = re.search(r"\b(\d{6})\b", " ".join(m["text"] for m in sms))
    assert otp, sms
    assert "pin" in answer(otp.group(1)).lower()
    assert "again" in answer("2580").lower()
    done = answer("2580")
    assert done.startswith("END ") and "active" in done.lower()
    upi_sms = phone.new_messages(wait=15)
    assert any("KX7P9Q" in m["text"] for m in upi_sms), upi_sms


def test_terminal_command_texts_and_dials(server):
    runner = CliRunner()
    result = runner.invoke(simulate, ["--phone", "0712000999", "--url", server], input="2\nHELP\n1\n1\nq\n")
    assert result.exit_code == 0, result.output
    assert "[SMS]" in result.output  # the HELP reply arrived
    assert "school" in result.output.lower()  # the unlinked phone was told to ask the school
    assert "Wanjiku" not in result.output and "KX7P9Q" not in result.output


def test_terminal_command_without_a_service(tmp_path):
    result = CliRunner().invoke(simulate, ["--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "make run" in result.output


def test_terminal_phone_dials_a_service_without_the_simulator_inbox(runtime, tmp_path):
    """Production mode has no simulator inbox: the terminal phone still dials and texts, and says
    the SMS are not shown (it refused to start)."""
    settings = make_settings(tmp_path, runtime.db, simulator_enabled=False)
    with _serving(create_app(runtime=Runtime.build(settings, db=runtime.db, redis=runtime.redis))) as url:
        result = CliRunner().invoke(simulate, ["--phone", "0712000999", "--url", url],
                                    input="1\n4\n0\n2\n2\nHELP\n3\nq\n")
    assert result.exit_code == 0, result.output
    assert "this service has no simulator inbox" in result.output and "(no simulator inbox)" in result.output
    assert "My account" in result.output and "Activate your account first" in result.output


def test_terminal_phone_reads_the_inbox_of_a_production_simulator_with_the_token(runtime, tmp_path):
    """A production service serving the simulator wants the token on the inbox too: the terminal
    phone sends it there as on its callbacks (the inbox answered it 403 and the phone gave up)."""
    settings = dataclasses.replace(make_settings(tmp_path, runtime.db, webhook_token=TOKEN), env="production")
    with _serving(create_app(runtime=Runtime.build(settings, db=runtime.db, redis=runtime.redis))) as url:
        phone = Phone(url, PARENT, "*384*1234#", token=TOKEN)
        assert phone.inbox() == [] and phone.has_inbox
        assert phone.hop("sim-prod-1", []).startswith("CON ")


@contextlib.contextmanager
def _serving(app: Flask) -> Iterator[str]:
    """``app`` on a real HTTP server of its own, for the terminal phone: its URL."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
