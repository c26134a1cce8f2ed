"""The web phone's API and the terminal phone, against a real HTTP server with the embedded SMS worker."""

from __future__ import annotations

import re
import threading
from datetime import date

import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from gateway.app import create_app
from gateway.cli.simulate import Phone, simulate
from gateway.runtime import Runtime
from registry.models import Guardian, GuardianLink, Institution, Learner
from tests.conftest import make_settings

PARENT = "+254712000101"
STRANGER = "+254712000999"


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
    app = create_app(runtime=runtime)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    worker = start_embedded_worker(runtime)
    yield f"http://127.0.0.1:{httpd.server_port}"
    worker.stop(timeout=10)
    httpd.shutdown()


def test_page_is_served_in_development(client):
    response = client.get("/simulator")
    assert response.status_code == 200
    assert b"phone simulator" in response.data and b"*384*1234#" in response.data


def test_simulator_is_off_in_production_unless_enabled(runtime, tmp_path):
    settings = make_settings(tmp_path, runtime.db, simulator_enabled=False)
    client = create_app(runtime=Runtime.build(settings, db=runtime.db, redis=runtime.redis)).test_client()
    assert client.get("/simulator").status_code == 404
    assert client.get("/simulator/api/inbox?phone=0712000101").status_code == 404


def test_api_refuses_bad_phone(client):
    response = client.post("/simulator/api/ussd", json={"phone": "020 2222222", "text": ""})
    assert response.status_code == 400 and "landline" in response.json["reason"]


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
    app = create_app(runtime=Runtime.build(settings, db=runtime.db, redis=runtime.redis))
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        result = CliRunner().invoke(simulate, ["--phone", "0712000999", "--url", f"http://127.0.0.1:{httpd.server_port}"],
                                    input="1\n4\n0\n2\n2\nHELP\n3\nq\n")
    finally:
        httpd.shutdown()
    assert result.exit_code == 0, result.output
    assert "this service has no simulator inbox" in result.output and "(no simulator inbox)" in result.output
    assert "My account" in result.output and "Activate your account first" in result.output
