"""CONTRACT.md driven as an outside test suite drives it: the installed ``elimu`` console script in
a subprocess (its exit codes, what goes to stdout and what to stderr), and ``elimu serve`` over HTTP
with ``elimu worker`` beside it. ``test_contract_conformance.py`` holds the in-process checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import TEST_SECRET
from tests.ports import start_listening
from tests.sms.conftest import fake_at  # noqa: F401 - the fake AT server fixture

ELIMU = Path(sys.executable).parent / "elimu"  # the console script pip installed
PHONE = "+254712345678"
LEARNERS_HEADER = ("upi, first_name, middle_name, last_name, date_of_birth, gender, birth_certificate_no, "
                   "assessment_no, institution_code, institution_name, county_code, grade, guardian_name, "
                   "guardian_phone, guardian_relationship\n")
RESULTS_HEADER = "exam, year, index_number, upi, candidate_name, mean_grade, points, subjects\n"
GOOD_LEARNERS = (
    ",Amina,,Otieno,2014-09-05,F,BC100,,WE4T,Kilimani Primary,047,Grade 5,Mama Amina,0712 345 678,mother\n"
    "UP1,Brian,K,Mwangi,2010-01-02,M,,,WE4T,Kilimani Primary,047,Form 1,Brian,+254 733 999 888,self\n"
)
BAD_LEARNER = "UP6,Eve,,Kip,2012-13-02,X,,,WE4T,Kilimani Primary,048,Form 9,G,0712345678,mother\n"
GOOD_RESULT = "KCSE,2025,00611030002,UP1,Brian K Mwangi,A-,80,ENG:B+;KIS:A-;MAT:A\n"
BAD_RESULT = "KCSE,2025,36611030009,,Jane Wanjiku,a-,80,\n"


def outside_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a shell with none of the project's variables set, but ``extra`` and an
    instance folder of this test's own."""
    prefixes = ("ELIMU_", "AT_", "PROMETHEUS_", "DATABASE_URL", "REDIS_URL", "SMS_BACKEND", "WEB_CONCURRENCY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, "ELIMU_INSTANCE_PATH": str(tmp_path / "instance"), **extra}


def elimu(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``elimu ARGS`` as a shell runs it: stdout and stderr apart, the exit status."""
    return subprocess.run([str(ELIMU), *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=env["ELIMU_INSTANCE_PATH"].rsplit("/", 1)[0])


def line_rows(stderr: str) -> list[str]:
    """The rejected rows an import names on stderr (``line N: reason``)."""
    return [row for row in stderr.splitlines() if row.startswith("line ")]


@pytest.mark.slow
def test_the_installed_elimu_imports_with_the_contracts_counts_streams_and_exit_codes(tmp_path):
    """``elimu registry import-learners|import-results FILE``: counts on stdout, each rejected row
    on stderr as ``line N: reason`` (the header is line 1), exit 0 all accepted, 1 some rejected (the
    good rows kept), 2 unreadable; with no variable set, the SQLite file in the instance folder and
    a development key with a warning (on stderr: ``--json`` output stays JSON)."""
    env = outside_env(tmp_path)
    upgraded = elimu(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "instance" / "elimu.sqlite3").is_file()
    assert "ELIMU_SECRET_KEY" in upgraded.stderr and "ELIMU_SECRET_KEY" not in upgraded.stdout

    def run_import(kind: str, name: str, text: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / name).write_text(text, encoding="utf-8")
        return elimu(env, "registry", f"import-{kind}", str(tmp_path / name))

    learners = run_import("learners", "learners.csv", LEARNERS_HEADER + GOOD_LEARNERS)
    assert (learners.returncode, line_rows(learners.stderr)) == (0, []), learners.stderr
    assert learners.stdout.startswith("added 2, updated 0, unchanged 0, rejected 0")
    again = run_import("learners", "learners.csv", LEARNERS_HEADER + GOOD_LEARNERS)
    assert again.returncode == 0 and again.stdout.startswith("added 0, updated 0, unchanged 2, rejected 0")

    some = run_import("learners", "some.csv", LEARNERS_HEADER + GOOD_LEARNERS.splitlines(True)[0] + BAD_LEARNER)
    assert some.returncode == 1, some.stderr
    assert some.stdout.startswith("added 0, updated 0, unchanged 1, rejected 1")
    [rejected] = line_rows(some.stderr)
    assert rejected.startswith("line 3: ") and "date_of_birth" in rejected and "county_code" in rejected

    results = run_import("results", "results.csv", RESULTS_HEADER + GOOD_RESULT + BAD_RESULT)
    assert results.returncode == 1, results.stderr
    assert results.stdout.startswith("added 1, updated 0, unchanged 0, rejected 1")
    assert [row[:8] for row in line_rows(results.stderr)] == ["line 3: "]
    kept = run_import("results", "results.csv", RESULTS_HEADER + GOOD_RESULT)  # the good row was kept
    assert kept.returncode == 0 and kept.stdout.startswith("added 0, updated 0, unchanged 1, rejected 0")

    missing = elimu(env, "registry", "import-learners", str(tmp_path / "nowhere.csv"))
    wrong = run_import("results", "wrong.csv", "just,some,columns\n1,2,3\n")
    for unreadable in (missing, wrong):  # the other unreadable files: test_contract_conformance.py
        assert unreadable.returncode == 2 and unreadable.stderr.strip() and not unreadable.stdout

    released = elimu(env, "results", "release", "KCSE", "2025")
    assert released.returncode == 0 and "KCSE 2025" in released.stdout
    listed = elimu(env, "messages", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def _serve(env: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """``elimu serve --host 127.0.0.1 --port P``, once it answers ``/readyz``: (process, base URL)."""
    log = tmp_path / "serve.log"
    served, port = start_listening(lambda port: subprocess.Popen(
        [str(ELIMU), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), start_new_session=True), log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # bounds a hang only
    while True:
        try:
            if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                return served, base
        except requests.RequestException:  # refused, or a read timeout while the worker boots
            pass
        assert time.monotonic() < deadline and served.poll() is None, log.read_text()[-2000:]
        time.sleep(0.2)


@pytest.mark.redis
@pytest.mark.slow
def test_with_redis_url_elimu_serve_is_the_web_alone_and_elimu_worker_burst_sends(tmp_path, real_redis, redis_url):
    """"with it set the web service alone (workers run as ``elimu worker``)"; ``elimu worker
    --burst`` "until the queues are empty": a text AT posts is answered 200 at once, its reply
    waits for a worker and goes out when one runs, once, though AT posted the text twice."""
    env = outside_env(tmp_path, REDIS_URL=redis_url, ELIMU_SECRET_KEY=TEST_SECRET,
                      DATABASE_URL=f"sqlite:///{tmp_path / 'served.sqlite3'}")
    assert elimu(env, "db", "upgrade").returncode == 0
    served, base = _serve(env, tmp_path)
    try:
        text = {"from": PHONE, "to": "22384", "text": "HELP", "date": "2026-01-09 10:00:00", "id": "ATXid_o1",
                "networkCode": "63902"}
        for _ in range(2):  # AT posts again until it has a 200: the same id
            assert requests.post(f"{base}/sms/africastalking/inbound", data=text, timeout=10).status_code == 200
        assert json.loads(elimu(env, "messages", "--json").stdout) == []  # no worker in the web service
        burst = elimu(env, "worker", "--burst")
        assert burst.returncode == 0, burst.stderr[-2000:]
        records = json.loads(elimu(env, "messages", "--json").stdout)
        assert [(r["to"], r["kind"]) for r in records] == [(PHONE, "reply")]
        assert records[0]["status"] in ("submitted", "sent", "delivered")
        assert elimu(env, "worker", "--burst").returncode == 0
        assert len(json.loads(elimu(env, "messages", "--json").stdout)) == 1
    finally:
        served.terminate()
        served.wait(20)


@pytest.mark.slow
def test_elimu_serve_takes_the_ussd_code_and_the_webhook_token_from_the_environment(tmp_path):
    """ELIMU_USSD_CODE "the service code shown in texts and used by the simulator"; ELIMU_WEBHOOK_TOKEN
    "when set, every provider callback (the events endpoint too) must carry ``?token=<value>``, else
    403": set in the environment of ``elimu serve``, as an operator sets them."""
    token = "tok-0123456789abcdef"
    env = outside_env(tmp_path, ELIMU_USSD_CODE="*789*12#", ELIMU_WEBHOOK_TOKEN=token)
    assert elimu(env, "db", "upgrade").returncode == 0
    served, base = _serve(env, tmp_path)
    hop = {"sessionId": "ATUid_o1", "serviceCode": "*789*12#", "phoneNumber": "+254733999888", "networkCode": "63902",
           "text": ""}
    forms = {
        "/ussd/africastalking": hop,
        "/ussd/africastalking/events": {"sessionId": "ATUid_o0", "phoneNumber": PHONE, "status": "Success"},
        "/sms/africastalking/inbound": {"from": PHONE, "to": "22384", "text": "HELP", "id": "ATXid_o2"},
        "/sms/africastalking/delivery": {"id": "ATXid_unknown", "status": "Success", "phoneNumber": PHONE},
    }
    try:
        for path, form in forms.items():
            assert requests.post(f"{base}{path}", data=form, timeout=10).status_code == 403, path
            assert requests.post(f"{base}{path}?token=nope", data=form, timeout=10).status_code == 403, path
            assert requests.post(f"{base}{path}?token={token}", data=form, timeout=10).status_code == 200, path
        # a phone no school linked is told to ask its school, then to dial the configured code again
        screen = requests.post(f"{base}/ussd/africastalking?token={token}", data={**hop, "text": "1"}, timeout=10)
        assert screen.text.startswith("END ") and "*789*12#" in screen.text and "*384*1234#" not in screen.text
        assert "*789*12#" in requests.get(f"{base}/simulator", timeout=10).text
        # ``elimu simulate`` dials the same code, its requests carrying the token of its environment
        phone = subprocess.run([str(ELIMU), "simulate", "--phone", "0733999888", "--url", base], input="1\n1\nq\n",
                               env=env, capture_output=True, text=True, timeout=120)
        assert phone.returncode == 0, phone.stdout + phone.stderr
        assert "Dial *789*12#" in phone.stdout and "Welcome to Elimu" in phone.stdout
        assert "This phone is not on any school record" in phone.stdout
    finally:
        served.terminate()
        served.wait(20)


@pytest.mark.slow
def test_sms_backend_africastalking_sends_with_the_at_variables_of_the_environment(tmp_path, fake_at):  # noqa: F811
    """SMS_BACKEND=africastalking "sends through the AT SDK", as AT_USERNAME, AT_API_KEY, AT_SENDER_ID
    and AT_API_BASE_URL say: ``elimu serve`` (its in-process worker) answers a text through a fake AT;
    AT's delivery report for the message id it gave makes it ``delivered`` in ``elimu messages``."""
    env = outside_env(tmp_path, SMS_BACKEND="africastalking", AT_USERNAME="elimu", AT_API_KEY=fake_at.api_key,
                      AT_SENDER_ID="ELIMU", AT_API_BASE_URL=fake_at.url)
    assert elimu(env, "db", "upgrade").returncode == 0
    served, base = _serve(env, tmp_path)
    try:
        text = {"from": PHONE, "to": "22384", "text": "HELP", "date": "2026-01-09 10:00:00", "id": "ATXid_o3"}
        assert requests.post(f"{base}/sms/africastalking/inbound", data=text, timeout=10).status_code == 200
        # until AT's answer is recorded: a message claimed for sending is 'submitted' already, its
        # provider id not yet written (the bounds below are on a hang only)
        deadline = time.monotonic() + 120
        while not (records := json.loads(elimu(env, "messages", "--json").stdout)) or not records[0]["provider_message_id"]:
            assert time.monotonic() < deadline and served.poll() is None, records or "the reply was not sent"
            time.sleep(0.2)
        sent = records
        # AT's delivery report for that id: elimu messages says delivered
        report = {"id": "ATXid_1", "status": "Success", "phoneNumber": PHONE, "networkCode": "63902"}
        assert requests.post(f"{base}/sms/africastalking/delivery", data=report, timeout=10).status_code == 200
        deadline = time.monotonic() + 120
        while (records := json.loads(elimu(env, "messages", "--json").stdout))[0]["status"] != "delivered":
            assert time.monotonic() < deadline and served.poll() is None, records
            time.sleep(0.2)
    finally:
        served.terminate()
        served.wait(20)
    [seen] = fake_at.requests
    assert seen.path == "/version1/messaging" and seen.headers.get("Apikey") == fake_at.api_key
    assert (seen.form["username"], seen.form["to"], seen.form["from"]) == ("elimu", PHONE, "ELIMU")
    assert seen.form["message"].startswith("Elimu: for results send KCSE")
    assert [(r["to"], r["provider_message_id"]) for r in sent] == [(PHONE, "ATXid_1")]
    assert sent[0]["status"] in ("submitted", "sent")  # AT took it; its delivery report says more
