"""Scale-out proof on one PostgreSQL and one Redis: two web servers (gunicorn, one of them with two worker
processes) answer alternate hops of the same USSD sessions; two ``elimu worker`` processes drain one queue
without sending anything twice; /metrics adds up across a server's processes (under `elimu serve` too);
without REDIS_URL gunicorn runs one process, whose embedded Redis holds every session."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
import requests

from registry.models import Guardian, GuardianLink, Institution, Learner, MessageKind
from registry.outbox import queue_many
from tests.conftest import TEST_SECRET
from tests.ports import listening_socket, start_listening
from tests.sms.conftest import fake_at  # noqa: F401 - the fake AT server fixture
from tests.sms.support import at_settings, job_runtime, outbox_rows

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PARENTS = [f"+2547160{n:05d}" for n in range(3)]
# Bounds on a hang only, never on speed (that is the bench's): a process that starts Python and
# imports the app spends about 2 s of CPU, measured at 20 s on a loaded 2-core host.
START_S = 120.0  # a server answering /readyz
RUN_S = 300.0  # an `elimu worker` run, a request, a server's stop


def _env(pg_url: str, redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ELIMU_", "PROMETHEUS_"))}
    env.update(DATABASE_URL=pg_url, REDIS_URL=redis_url, ELIMU_ENV="development", ELIMU_SECRET_KEY=TEST_SECRET,
               ELIMU_INSTANCE_PATH=str(tmp_path), ELIMU_LOG_FORMAT="json", SMS_BACKEND="outbox")
    env.update(extra)
    return env


@contextmanager
def web_server(env: dict[str, str], workers: int, metrics_dir: Path, started: list | None = None):
    metrics_dir.mkdir(parents=True, exist_ok=True)
    log = metrics_dir.with_suffix(".error.log")  # a file: a pipe nobody reads fills and stops gunicorn
    with listening_socket() as listener:  # gunicorn takes it over: the port is never free to be taken
        port = listener.getsockname()[1]
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app", "--bind",
             f"fd://{listener.fileno()}", "--workers", str(workers), "--threads", "2"],
            cwd=ROOT, env={**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, pass_fds=[listener.fileno()],
            stdout=metrics_dir.with_suffix(".access.log").open("wb"), stderr=log.open("wb"), start_new_session=True)
    if started is not None:
        started.append(proc)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield url
    finally:
        _stop(proc)


def _wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    """Until the server at ``url`` answers /readyz with 200; it must not exit meanwhile (``log``:
    its standard error)."""
    deadline = time.monotonic() + START_S
    while True:
        try:
            if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() >= deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise AssertionError(f"the server did not become ready (exit {proc.returncode}): {tail}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    """TERM to the server's process group, and its exit (gunicorn's graceful timeout is 20 s)."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(RUN_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def _seed(database) -> None:
    with database.transaction() as s:
        school = Institution(code="WE4T", name="Kamukunji Primary", county_code="047")
        for n, phone in enumerate(PARENTS):
            learner = Learner(upi=f"S{n:05d}", first_name="Imani", last_name=f"Mutua{n}", date_of_birth=date(2014, 6, 1),
                              gender="F", birth_certificate_no=f"SC{n}", grade="Grade 5", institution=school)
            guardian = Guardian(phone=phone)
            s.add_all([learner, guardian, GuardianLink(learner=learner, guardian=guardian, relationship_="mother")])


def _hop(url: str, session: str, phone: str, text: str) -> str:
    response = requests.post(f"{url}/ussd/africastalking", timeout=RUN_S, data={
        "sessionId": session, "phoneNumber": phone, "serviceCode": "*384*1234#", "text": text})
    assert response.status_code == 200
    return response.text


def _metric(url: str, name: str) -> float:
    body = requests.get(f"{url}/metrics", timeout=RUN_S).text
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", body, re.M))


def test_hops_of_one_session_alternate_between_two_web_servers(pg_database, real_redis, redis_url, tmp_path):
    _seed(pg_database)
    env = _env(pg_database.url, redis_url, tmp_path)
    with web_server(env, 2, tmp_path / "metrics-a") as a, web_server(env, 1, tmp_path / "metrics-b") as b:
        for n, phone in enumerate(PARENTS):
            servers = [a, b] if n % 2 == 0 else [b, a]
            session, inputs = f"scale-{n}", []

            def hop(value: str | None = None, *, _s=session, _i=inputs, _p=phone, _srv=servers) -> str:
                if value is not None:
                    _i.append(value)
                url = _srv[len(_i) % 2]  # every hop on the other server
                return _hop(url, _s, _p, "*".join(_i))

            assert hop().startswith("CON ")
            assert "birth certificate" in hop("1").lower()
            assert "date of birth" in hop(f"SC{n}").lower()
            assert "code" in hop("01062014").lower()
            subprocess.run([str(BIN / "elimu"), "worker", "--burst"], env=env, cwd=ROOT, check=True, timeout=RUN_S,
                           capture_output=True)
            inbox = [json.loads(m) for m in real_redis.lrange(f"elimu:sms:inbox:{phone}", 0, -1)]
            otp = re.search(r"\b(\d{6})\b", " ".join(m["text"] for m in inbox)).group(1)
            assert "pin" in hop(otp).lower()
            assert "again" in hop("2580").lower()
            done = hop("2580")
            assert done.startswith("END ") and "active" in done.lower()
            # a retried hop answered by the other server gives the same answer, no second effect
            assert _hop(servers[(len(inputs) + 1) % 2], session, phone, "*".join(inputs)) == done
        hops_a, hops_b = _metric(a, "elimu_ussd_hops_total"), _metric(b, "elimu_ussd_hops_total")
    # 3 sessions x 8 hops (7 + a retry) split between the servers; server A sums its two processes
    assert hops_a + hops_b == 3 * 8
    assert hops_a >= 12 and hops_b >= 9


def test_two_workers_drain_one_queue_without_duplicates(tmp_path, pg_database, real_redis, redis_url,
                                                        fake_at):  # noqa: F811 - the fixture imported above
    numbers = [f"+2547170{n:05d}" for n in range(300)]
    with job_runtime(tmp_path, pg_database, real_redis, redis_url, **at_settings(fake_at)) as runtime:
        with runtime.db.transaction() as session:
            queue_many(session, [(n, MessageKind.NOTICE, f"Notice {n[-3:]}", None) for n in numbers])
        env = _env(pg_database.url, redis_url, tmp_path, SMS_BACKEND="africastalking", AT_USERNAME="elimu",
                   AT_API_KEY="test-api-key", AT_API_BASE_URL=fake_at.url, ELIMU_SMS_RATE="0")
        env["ELIMU_ENV"] = "production"
        workers = [subprocess.Popen([str(BIN / "elimu"), "worker", "--burst"], env=env, cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        for worker in workers:
            assert worker.wait(RUN_S) == 0
        rows = outbox_rows(runtime)
    counts = {n: fake_at.sent_to(n) for n in numbers}
    assert counts == dict.fromkeys(numbers, 1)
    assert len({row.provider_message_id for row in rows}) == len(numbers)



def test_without_redis_url_gunicorn_runs_one_process_whatever_it_is_told(tmp_path):
    """The embedded Redis lives in a process: two would each hold half the sessions."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ELIMU_", "PROMETHEUS_", "REDIS_URL", "DATABASE_URL", "WEB_CONCURRENCY"))}
    env.update(ELIMU_ENV="development", ELIMU_SECRET_KEY=TEST_SECRET, ELIMU_INSTANCE_PATH=str(tmp_path),
               ELIMU_LOG_FORMAT="json", WEB_CONCURRENCY="3")
    subprocess.run([str(BIN / "elimu"), "db", "upgrade"], env=env, check=True, capture_output=True, timeout=RUN_S)
    started: list[subprocess.Popen] = []
    with web_server(env, 3, tmp_path / "metrics", started) as url:
        master = started[0].pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        answers = {_hop(url, "embedded-1", "+254712345678", "") for _ in range(6)}
        answers |= {_hop(url, "embedded-1", "+254712345678", "4") for _ in range(6)}
        requests.post(f"{url}/ussd/africastalking?token=sekrit-123", data={"sessionId": "x"}, timeout=RUN_S)
        requests.get(f"{url}/ussd/generic?msisdn=0712345678&ussd_string=4*1*4826&session_id=g1", timeout=RUN_S)
    logged = (tmp_path / "metrics.access.log").read_text()
    assert '"POST /ussd/africastalking HTTP/1.1" 400' in logged and '"GET /ussd/generic HTTP/1.1" 200' in logged
    assert "sekrit-123" not in logged and "4826" not in logged and "712345678" not in logged  # no query strings
    assert len(children) == 1
    assert len(answers) == 2 and any(a.startswith("CON Welcome to Elimu") for a in answers)  # one session


def test_elimu_serve_adds_up_the_metrics_of_its_processes(pg_database, real_redis, redis_url, tmp_path):
    """``elimu serve`` with REDIS_URL runs two processes: every scrape counts the hops of both
    (each process answering with its own would read as counter resets to Prometheus)."""
    env = _env(pg_database.url, redis_url, tmp_path)
    log = tmp_path / "serve.log"
    proc, port = start_listening(lambda port: subprocess.Popen(
        [str(BIN / "elimu"), "serve", "--port", str(port), "--workers", "2"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), start_new_session=True), log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        with ThreadPoolExecutor(16) as pool:  # at once, so that both processes answer some
            answers = list(pool.map(lambda n: _hop(url, f"serve-{n}", PARENTS[n % 3], ""), range(64)))
            scrapes = list(pool.map(lambda _: _metric(url, "elimu_ussd_hops_total"), range(16)))
    finally:
        _stop(proc)
    assert all(answer.startswith("CON ") for answer in answers)
    assert scrapes == [64.0] * 16
