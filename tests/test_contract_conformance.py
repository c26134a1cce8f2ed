"""CONTRACT.md, point by point: names, configuration, the HTTP table, the command line and both CSV
formats, as outside test suites and telcos rely on them. The USSD and SMS conventions have their
own files (``tests/ussd/test_contract_ussd.py``, ``tests/sms/test_contract_sms.py``).
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from importlib.metadata import distribution
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.app import create_app
from gateway.cli import cli
from gateway.config import ConfigError, Settings
from gateway.runtime import Runtime
from registry.db import Database
from registry.models import (
    ExamResult,
    Guardian,
    GuardianLink,
    Learner,
    MessageKind,
    MessageStatus,
    UssdSessionEvent,
)
from registry.outbox import queue_sms
from tests.cli_support import run_elimu
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[1]
PHONE = "+254712345678"
HOP = {"sessionId": "ATUid_c1", "serviceCode": "*384*1234#", "phoneNumber": PHONE, "networkCode": "63902",
       "text": ""}
LEARNERS_HEADER = ("upi, first_name, middle_name, last_name, date_of_birth, gender, birth_certificate_no, "
                   "assessment_no, institution_code, institution_name, county_code, grade, guardian_name, "
                   "guardian_phone, guardian_relationship\n")
RESULTS_HEADER = "exam, year, index_number, upi, candidate_name, mean_grade, points, subjects\n"


def client_with(runtime: Runtime, tmp_path: Path, **overrides):
    settings = make_settings(tmp_path, runtime.db, **overrides)
    return create_app(runtime=Runtime.build(settings, db=runtime.db, redis=runtime.redis)).test_client()


# --- Names --------------------------------------------------------------------------------------


def test_names_distribution_console_script_packages_and_wsgi_app():
    dist = distribution("elimu-gateway")
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts == {"elimu": "gateway.cli:main"}
    for package in ("gateway", "menus", "registry", "workers"):
        assert (ROOT / package / "__init__.py").is_file()
    tree = ast.parse((ROOT / "wsgi.py").read_text())
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)}
    assert "app" in assigned  # gunicorn wsgi:app


# --- Configuration ------------------------------------------------------------------------------


def test_configuration_defaults(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        settings = Settings.from_env({"ELIMU_INSTANCE_PATH": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'elimu.sqlite3'}"  # SQLite in the instance folder
    assert settings.redis_url is None and settings.embedded_redis  # fakeredis and an in-process worker
    assert settings.sms_backend == "outbox"
    assert (settings.at_username, settings.at_api_key, settings.at_sender_id, settings.at_api_base_url) == (
        None, None, None, None)
    assert settings.webhook_token is None
    assert settings.ussd_code == "*384*1234#"
    assert settings.dev_mode and settings.secret_key  # a dev-only key ...
    assert any("ELIMU_SECRET_KEY" in str(w.message) for w in caught)  # ... with a warning


def test_configuration_values_are_read(tmp_path):
    settings = Settings.from_env({
        "ELIMU_INSTANCE_PATH": str(tmp_path), "DATABASE_URL": "postgresql+psycopg://u@db/elimu",
        "REDIS_URL": "redis://cache:6379/0", "SMS_BACKEND": "africastalking", "AT_USERNAME": "sandbox",
        "AT_API_KEY": "k", "AT_SENDER_ID": "ELIMU", "AT_API_BASE_URL": "http://127.0.0.1:9000/version1",
        "ELIMU_SECRET_KEY": "s" * 32, "ELIMU_WEBHOOK_TOKEN": "t" * 32, "ELIMU_USSD_CODE": "*123*45#",
    })
    assert settings.database_url == "postgresql+psycopg://u@db/elimu" and settings.redis_url == "redis://cache:6379/0"
    assert (settings.sms_backend, settings.at_username, settings.at_api_key, settings.at_sender_id) == (
        "africastalking", "sandbox", "k", "ELIMU")
    assert settings.at_api_base_url == "http://127.0.0.1:9000/version1"
    assert (settings.webhook_token, settings.ussd_code) == ("t" * 32, "*123*45#")


def test_secret_key_is_required_outside_dev_mode(tmp_path):
    with pytest.raises(ConfigError, match="ELIMU_SECRET_KEY"):
        Settings.from_env({"ELIMU_INSTANCE_PATH": str(tmp_path), "ELIMU_ENV": "production"})


def test_at_sandbox_username_and_api_base_url_set_the_sdk_base_url():
    from workers.backends.africastalking import sms_service

    assert sms_service("sandbox", "k1")._baseUrl == "https://api.sandbox.africastalking.com/version1"
    assert sms_service("elimu", "k1")._baseUrl == "https://api.africastalking.com/version1"
    override = sms_service("elimu", "k1", "http://127.0.0.1:9000/version1/")
    assert override._baseUrl == override._contentUrl == "http://127.0.0.1:9000/version1"


@pytest.mark.parametrize("path", ["/ussd/africastalking", "/ussd/africastalking/events",
                                  "/sms/africastalking/inbound", "/sms/africastalking/delivery"])
def test_webhook_token_guards_every_callback_when_set(runtime, tmp_path, path):
    guarded = client_with(runtime, tmp_path, webhook_token="tok-0123456789")
    assert guarded.post(path, data=HOP).status_code == 403
    assert guarded.post(f"{path}?token=nope", data=HOP).status_code == 403
    assert guarded.post(f"{path}?token=tok-0123456789", data=HOP).status_code != 403
    assert client_with(runtime, tmp_path).post(path, data=HOP).status_code != 403  # unset: not checked


def test_ussd_code_is_the_one_shown_in_texts(runtime, tmp_path):
    client = client_with(runtime, tmp_path, ussd_code="*789*12#")
    client.post("/ussd/africastalking", data=HOP)
    body = client.post("/ussd/africastalking", data={**HOP, "text": "1"}).get_data(as_text=True)
    assert body.startswith("END ") and "*789*12#" in body and "*384*1234#" not in body
    assert "*789*12#" in client.get("/simulator").get_data(as_text=True)


# --- HTTP ---------------------------------------------------------------------------------------


def test_ussd_hop_answers_200_text_plain_con(client):
    response = client.post("/ussd/africastalking", data=HOP)
    assert response.status_code == 200 and response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert body.startswith("CON ") and len(body) <= 160
    assert all(ch == "\n" or " " <= ch <= "~" for ch in body)


@pytest.mark.parametrize("missing", ["sessionId", "phoneNumber"])
def test_ussd_hop_without_session_or_phone_is_400_with_a_one_line_reason(client, missing):
    response = client.post("/ussd/africastalking", data={k: v for k, v in HOP.items() if k != missing})
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and missing in body and body.strip().count("\n") == 0


def test_ussd_events_answer_200_and_are_kept(client, runtime):
    event = {"date": "2026-01-09 10:00:00", "sessionId": "ATUid_c1", "serviceCode": "*384*1234#",
             "networkCode": "63902", "phoneNumber": PHONE, "status": "Incomplete", "cost": "0.0",
             "durationInMillis": "3000", "hopsCount": "2", "hopsMetadata": "", "input": "4",
             "lastAppResponse": "CON My account"}
    assert client.post("/ussd/africastalking/events", data=event).status_code == 200
    assert client.post("/ussd/africastalking/events", data=event).status_code == 200  # a replay too
    with runtime.db.session() as session:
        [row] = session.query(UssdSessionEvent).all()
    assert (row.session_id, row.status, row.hops_count, row.phone) == ("ATUid_c1", "Incomplete", 2, PHONE)


def test_delivery_report_for_an_unknown_id_is_200(client):
    report = {"id": "ATXid_unknown", "status": "Success", "phoneNumber": PHONE, "networkCode": "63902"}
    assert client.post("/sms/africastalking/delivery", data=report).status_code == 200
    failed = report | {"status": "Failed", "failureReason": "UserInBlackList", "retryCount": "0"}
    assert client.post("/sms/africastalking/delivery", data=failed).status_code == 200


def test_health_readiness_and_metrics(client, runtime, monkeypatch):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.mimetype == "text/plain"
    assert re.search(r"^# TYPE \w+ (counter|gauge|histogram|summary)$", metrics.get_data(as_text=True), re.M)

    def down():
        raise ConnectionError("redis down")

    monkeypatch.setattr(runtime.redis, "ping", down)
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200  # the process still runs


def test_metrics_parse_as_prometheus_text(client):
    """``GET /metrics`` "Prometheus text format": a Prometheus parser reads every line of it."""
    from prometheus_client.parser import text_string_to_metric_families

    client.post("/ussd/africastalking", data=HOP)
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    families = {family.name: family for family in text_string_to_metric_families(response.get_data(as_text=True))}
    assert families["elimu_ussd_hops"].type == "counter" and families["elimu_ussd_hops"].samples


CHARSET_FORM = "application/x-www-form-urlencoded; charset=UTF-8"  # as AT's and many proxies' posts say


@pytest.mark.parametrize(("path", "form", "answer"), [
    ("/ussd/africastalking", HOP, "CON Welcome to Elimu"),
    ("/ussd/africastalking/events", {"sessionId": "ATUid_c1", "phoneNumber": PHONE, "status": "Success",
                                     "hopsCount": "1", "input": ""}, None),
    ("/sms/africastalking/inbound", {"from": PHONE, "to": "22384", "text": "HELP", "date": "2026-01-09 10:00:00",
                                     "id": "ATXid_cs1", "linkId": "SampleLinkId", "networkCode": "63902"}, None),
    ("/sms/africastalking/delivery", {"id": "ATXid_unknown", "status": "Success", "phoneNumber": PHONE,
                                      "networkCode": "63902"}, None),
])
def test_callbacks_read_a_form_whose_content_type_names_its_charset(client, runtime, path, form, answer):
    """"POST, application/x-www-form-urlencoded": also with ``; charset=UTF-8`` after it (the
    inbound and delivery callbacks answer 400 to a form without its ``id``)."""
    from urllib.parse import urlencode

    response = client.post(path, data=urlencode(form), content_type=CHARSET_FORM)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert answer is None or response.get_data(as_text=True).startswith(answer)
    if path.endswith("/events"):
        with runtime.db.session() as session:
            [row] = session.query(UssdSessionEvent).all()
        assert (row.session_id, row.status, row.phone) == ("ATUid_c1", "Success", PHONE)


@pytest.mark.parametrize("form", [{"text": ""}, {**HOP, "sessionId": ""}, {**HOP, "phoneNumber": ""}])
def test_ussd_hop_without_both_or_with_an_empty_one_is_400_with_a_one_line_reason(client, form):
    response = client.post("/ussd/africastalking", data=form)
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and body.strip() and body.strip().count("\n") == 0
    assert "sessionId" in body or "phoneNumber" in body


def test_readyz_is_503_when_the_database_does_not_answer(client, runtime, monkeypatch):
    def down():
        raise ConnectionError("database down")

    monkeypatch.setattr(runtime.db, "ping", down)
    assert client.get("/readyz").status_code == 503


# --- Command line -------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "options"), [
    (["serve"], ["--host", "--port"]),
    (["worker"], ["--burst"]),
    (["db", "upgrade"], []),
    (["registry", "import-learners"], ["FILE"]),
    (["registry", "import-results"], ["FILE"]),
    (["results", "release"], ["EXAM", "YEAR"]),
    (["messages"], ["--to", "--json"]),
    (["demo", "seed"], []),
    (["simulate"], ["--phone"]),
])
def test_every_command_and_option_exists(command, options):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    for option in options:
        assert option in result.output


def test_db_upgrade_makes_the_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    result = run_elimu(url, tmp_path, "db", "upgrade")
    assert result.exit_code == 0, result.output
    database = Database(url)
    try:
        with database.session() as session:
            assert session.query(Learner).count() == 0
    finally:
        database.dispose()


def _messages_json(database: Database, tmp_path: Path, *args: str) -> list[dict]:
    result = run_elimu(database, tmp_path, "messages", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_messages_json_newest_first_with_the_contract_fields(sqlite_database, tmp_path):
    with sqlite_database.transaction() as session:
        first = queue_sms(session, PHONE, MessageKind.NOTICE, "Elimu: school opens on Monday.")
        # even an OTP row whose body held the code (the outbox keeps it redacted) is never shown
        code = queue_sms(session, "+254722000111", MessageKind.OTP, "Elimu code: 908172", secret="908172")
        first.status = MessageStatus.DELIVERED
        first.provider_message_id = "ATXid_1"
    records = _messages_json(sqlite_database, tmp_path)
    assert [r["id"] for r in records] == [code.id, first.id]
    assert set(records[0]) >= {"id", "to", "kind", "status", "provider_message_id", "created_at"}
    assert records[1] | {"created_at": None} == {**records[1], "to": PHONE, "status": "delivered",
                                                 "provider_message_id": "ATXid_1", "created_at": None}
    assert records[0]["status"] in ("queued", "submitted", "sent", "delivered", "failed", "rejected", "expired")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d.*", records[0]["created_at"])  # ISO 8601
    assert [r["id"] for r in _messages_json(sqlite_database, tmp_path, "--to", "0712345678")] == [first.id]
    table = run_elimu(sqlite_database, tmp_path, "messages")
    assert table.exit_code == 0 and "908172" not in table.stdout + json.dumps(records)
    assert "one-time code, not shown" in table.stdout


def test_results_answer_not_released_until_elimu_results_release(sqlite_database, tmp_path):
    results = tmp_path / "results.csv"
    results.write_text(RESULTS_HEADER + "KCSE,2025,36611030002,,Jane Wambui Wanjiku,B+,62,ENG:B+;MAT:A\n",
                       encoding="utf-8")
    assert run_elimu(sqlite_database, tmp_path, "registry", "import-results", str(results)).exit_code == 0
    from registry.services.results import find_result

    with sqlite_database.session() as session:
        assert not find_result(session, "KCSE", "36611030002", None).series.released
    released = run_elimu(sqlite_database, tmp_path, "results", "release", "KCSE", "2025")
    assert released.exit_code == 0 and "KCSE 2025" in released.stdout
    with sqlite_database.session() as session:
        assert find_result(session, "KCSE", "36611030002", None).series.released


# --- learners.csv and results.csv ---------------------------------------------------------------


def _import(database: Database, tmp_path: Path, kind: str, text: str, name: str = "file.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return run_elimu(database, tmp_path, "registry", f"import-{kind}", str(path))


LEARNERS = LEARNERS_HEADER + (
    ",Amina,,Otieno,2014-09-05,F,BC100,,WE4T,Kilimani Primary,047,Grade 5,Mama Amina,0712 345 678,mother\n"
    ",Amina,,Otieno,2014-09-05,F,BC100,,WE4T,Kilimani Primary,047,Grade 5,Baba Amina,254722000111,father\n"
    "UP1,Brian,K,Mwangi,2010-01-02,M,,,WE4T,Kilimani Primary,047,Form 1,Brian,+254 733 999 888,self\n"
    "UP1,Brian,K,Mwangi,2010-01-02,M,,,WE4T,Kilimani Primary,047,Form 1,Mama,722000112,mother\n"
    "UP2,Carol,,Njeri,2019-02-02,F,,,WE4T,Kilimani Primary,047,PP1,G,,\n"
)


def test_learners_csv_groups_guardians_assigns_upis_and_normalises_phones(sqlite_database, tmp_path):
    result = _import(sqlite_database, tmp_path, "learners", LEARNERS)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("added 5, updated 0, unchanged 0, rejected 0")
    with sqlite_database.session() as session:
        learners = {learner.first_name: learner for learner in session.query(Learner)}
        assert set(learners) == {"Amina", "Brian", "Carol"}  # same birth certificate / same upi: one learner
        assert learners["Amina"].upi and learners["Brian"].upi == "UP1"
        assert sorted(g.phone for g in session.query(Guardian)) == [
            "+254712345678", "+254722000111", "+254722000112", "+254733999888"]
        assert session.query(GuardianLink).count() == 4
        own = session.query(GuardianLink).join(Guardian).filter(Guardian.phone == "+254733999888").one()
        assert (own.learner.upi, own.relationship_) == ("UP1", "self")  # the learner's own phone
    again = _import(sqlite_database, tmp_path, "learners", LEARNERS)  # the same file twice changes nothing
    assert again.exit_code == 0 and again.stdout.startswith("added 0, updated 0, unchanged 5, rejected 0")


def test_learners_csv_rejected_rows_are_line_numbered_on_stderr_exit_1(sqlite_database, tmp_path):
    bad = LEARNERS_HEADER + (
        "UP5,Dan,,Kip,2012-02-02,M,,,WE4T,Kilimani Primary,047,Grade 4,G,0712345678,father\n"
        "UP6,Eve,,Kip,2012-13-02,X,,,WE4T,Kilimani Primary,048,Form 9,G,0712345678,mother\n"
    )
    result = _import(sqlite_database, tmp_path, "learners", bad)
    assert result.exit_code == 1
    assert result.stdout.startswith("added 1, updated 0, unchanged 0, rejected 1")
    [line] = [line for line in result.stderr.splitlines() if "line" in line]
    assert line.startswith("line 3: ") and "date_of_birth" in line and "gender" in line and "county_code" in line
    with sqlite_database.session() as session:
        assert [learner.upi for learner in session.query(Learner)] == ["UP5"]  # the good row is kept


@pytest.mark.parametrize("content", [None, b"", b"\xff\xfeu\x00p\x00i\x00", b"just,some,columns\n1,2,3\n"])
@pytest.mark.parametrize("kind", ["learners", "results"])
def test_an_unreadable_file_exits_2(sqlite_database, tmp_path, kind, content):
    path = tmp_path / "input.csv"
    if content is not None:
        path.write_bytes(content)
    result = run_elimu(sqlite_database, tmp_path, "registry", f"import-{kind}", str(path))
    assert result.exit_code == 2 and result.stderr.strip()


def test_results_csv_upi_links_the_result_to_the_learner(sqlite_database, tmp_path):
    assert _import(sqlite_database, tmp_path, "learners", LEARNERS).exit_code == 0
    text = RESULTS_HEADER + "KCSE,2025,36611030002,UP1,Brian K Mwangi,B+,62,ENG:B+;MAT:A\n"
    assert _import(sqlite_database, tmp_path, "results", text, "results.csv").exit_code == 0
    with sqlite_database.session() as session:
        [row] = session.query(ExamResult).all()
        assert row.learner is not None and row.learner.upi == "UP1"


def test_results_csv_keeps_index_numbers_and_grade_signs(sqlite_database, tmp_path):
    text = RESULTS_HEADER + (
        "KCSE,2025,00611030002,,Jane Wanjiku,A-,80,ENG:B+;KIS:A-;MAT:A\n"
        "kcse,25,1,,X,Z,,\n"
    )
    result = _import(sqlite_database, tmp_path, "results", text)
    assert result.exit_code == 1 and result.stdout.startswith("added 1, updated 0, unchanged 0, rejected 1")
    assert result.stderr.startswith("line 3: ")
    with sqlite_database.session() as session:
        [row] = session.query(ExamResult).all()
    assert (row.index_number, row.mean_grade, row.subjects) == ("00611030002", "A-", "ENG:B+;KIS:A-;MAT:A")
    again = _import(sqlite_database, tmp_path, "results", RESULTS_HEADER + text.splitlines(True)[1])
    assert again.exit_code == 0 and again.stdout.startswith("added 0, updated 0, unchanged 1, rejected 0")


@pytest.mark.parametrize(("value", "dialled"), [(None, "*384*1234#"), ("", "*384*1234#"),
                                                ("  *384*55#  ", "*384*55#")])
def test_elimu_simulate_dials_the_ussd_code_as_the_service_reads_it(monkeypatch, value, dialled):
    """ELIMU_USSD_CODE is "the service code ... used by the simulator": unset or empty, the default."""
    from gateway.cli import simulate

    seen: list[str] = []
    monkeypatch.setattr(simulate.Phone, "inbox", lambda self: [])
    monkeypatch.setattr(simulate.Phone, "hop", lambda self, session, inputs: seen.append(self.ussd_code) or "END Bye")
    result = CliRunner().invoke(simulate.simulate, ["--url", "http://127.0.0.1:9"], input="1\nq\n",
                                env={"ELIMU_USSD_CODE": value})
    assert result.exit_code == 0, result.output
    assert seen == [dialled] and f"[1] Dial {dialled} " in result.output


def test_elimu_simulate_refuses_a_malformed_ussd_code_in_one_line(monkeypatch):
    from gateway.cli import simulate

    monkeypatch.setattr(simulate.Phone, "inbox", lambda self: [])
    result = CliRunner().invoke(simulate.simulate, ["--url", "http://127.0.0.1:9"], input="q\n",
                                env={"ELIMU_USSD_CODE": "384"})
    assert result.exit_code == 1 and "ELIMU_USSD_CODE" in result.output


def test_elimu_serve_without_redis_url_answers_and_sends_through_its_own_worker(tmp_path):
    """``elimu serve --host H --port P`` with REDIS_URL unset: the web service, the embedded Redis
    and an in-process SMS worker (an inbound HELP is answered by an SMS with no ``elimu worker``)."""
    import os
    import subprocess
    import sys
    import time

    import requests

    from tests.ports import start_listening

    url = f"sqlite:///{tmp_path / 'served.sqlite3'}"
    assert run_elimu(url, tmp_path, "db", "upgrade").exit_code == 0
    env = {**os.environ, "DATABASE_URL": url, "ELIMU_ENV": "development", "ELIMU_SECRET_KEY": "s" * 32,
           "ELIMU_INSTANCE_PATH": str(tmp_path)}
    for name in ("REDIS_URL", "SMS_BACKEND", "ELIMU_WEBHOOK_TOKEN"):
        env.pop(name, None)
    log = tmp_path / "serve.log"
    # started again on another port if its own was taken before it bound it, and known to be the
    # one listening there: /healthz below is surely its answer
    served, port = start_listening(lambda port: subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli import main; main()", "serve", "--host", "127.0.0.1",
         "--port", str(port)], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log.open("wb")), log)
    base = f"http://127.0.0.1:{port}"
    try:
        # Deadlines bound a hang only: under load the worker process may take seconds to boot (a
        # request meanwhile waits in the listen queue: a read timeout, not a refused connection),
        # and each wait gets its own.
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and served.poll() is None, "elimu serve did not start"
            time.sleep(0.2)
        assert requests.get(f"{base}/readyz", timeout=60).status_code == 200
        hop = requests.post(f"{base}/ussd/africastalking", data=HOP, timeout=60)
        assert hop.status_code == 200 and hop.text.startswith("CON Welcome to Elimu")
        inbound = {"from": PHONE, "to": "22384", "text": "HELP", "date": "2026-01-09 10:00:00", "id": "ATXid_s1"}
        assert requests.post(f"{base}/sms/africastalking/inbound", data=inbound, timeout=60).status_code == 200
        deadline = time.monotonic() + 120
        while True:
            records = json.loads(run_elimu(url, tmp_path, "messages", "--json").stdout)
            if records and records[0]["status"] != "queued":
                break
            assert time.monotonic() < deadline, records
            time.sleep(0.3)
        assert (records[0]["to"], records[0]["kind"]) == (PHONE, "reply")
    finally:
        served.terminate()
        served.wait(60)  # gunicorn's graceful stop takes up to 10 s


@pytest.mark.parametrize(("wire", "stored"), [
    ("+254712345678", PHONE), ("0712345678", PHONE), ("254 712 345 678", PHONE),
    ("+255712345678", "+255712345678"),  # another country's E.164 number is kept
    ("255712345678", None), ("Safaricom", None), ("0712 34", None),  # never stored other than as E.164
])
def test_a_session_events_phone_is_stored_as_e164_or_not_at_all(client, runtime, wire, stored):
    """"Every phone number the project stores or compares is E.164, whatever format it arrived in"."""
    event = {"sessionId": "ATUid_e164", "phoneNumber": wire, "status": "Success"}
    assert client.post("/ussd/africastalking/events", data=event).status_code == 200
    with runtime.db.session() as session:
        [row] = session.query(UssdSessionEvent).all()
    assert row.phone == stored


@pytest.mark.parametrize("kind", ["learners", "results"])
def test_a_folder_given_as_the_file_is_unreadable_and_said_so(sqlite_database, tmp_path, kind):
    folder = tmp_path / "exports"
    folder.mkdir()
    result = run_elimu(sqlite_database, tmp_path, "registry", f"import-{kind}", str(folder))
    assert result.exit_code == 2 and result.stderr == f"Error: {folder}: is a folder, not a CSV file\n"
