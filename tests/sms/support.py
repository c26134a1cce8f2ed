"""Test support for the SMS tests: registry rows, runtimes, and a fake Africa's Talking server.

The fake server is a real HTTP server on 127.0.0.1 (a random port) that the real ``africastalking``
SDK talks to. It answers like AT: 201 with ``Content-Type: application/json`` exactly and one
``Recipients`` entry per number; a test can script other answers (500, a per-recipient status code,
a slow answer, a text body) for the next requests. Like AT's servers, and unlike werkzeug's
development server, it keeps connections alive between requests (HTTP/1.1).
"""

from __future__ import annotations

import io
import itertools
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from werkzeug.wrappers import Request, Response

from gateway.runtime import Runtime
from registry.db import Database
from registry.models import (
    ExamResult,
    ExamSeries,
    Guardian,
    GuardianLink,
    Institution,
    Learner,
)
from tests.conftest import make_settings
from workers.context import use_runtime

# --- registry rows ------------------------------------------------------------------------------


def add_institution(session, code: str = "WE4T", name: str = "Kilimani Primary") -> Institution:
    institution = Institution(code=code, name=name, county_code="047")
    session.add(institution)
    session.flush()
    return institution


_upis = itertools.count(1)


def add_learner(session, institution: Institution, first: str = "Jane", last: str = "Wanjiku",
                middle: str | None = None, grade: str = "Form 4", upi: str | None = None) -> Learner:
    learner = Learner(upi=upi or f"T{next(_upis):05d}", first_name=first, middle_name=middle, last_name=last,
                      date_of_birth=date(2008, 1, 1), gender="F", grade=grade, institution=institution)
    session.add(learner)
    session.flush()
    return learner


def add_guardian(session, phone: str, *learners: Learner, active: bool = False) -> Guardian:
    """Link ``phone`` to ``learners`` as a school's import does (not verified: see ``verify``)."""
    guardian = session.query(Guardian).filter_by(phone=phone).one_or_none()
    if guardian is None:
        guardian = Guardian(phone=phone)
        session.add(guardian)
    if active:
        guardian.activated_at = datetime.now(UTC)
        guardian.pin_hash = "x"
    session.flush()
    for learner in learners:
        session.add(GuardianLink(learner_id=learner.id, guardian_id=guardian.id))
    session.flush()
    return guardian


def verify(session, phone: str, *learners: Learner) -> None:
    """Mark ``phone``'s links to ``learners`` proven (``GuardianLink.verified_at``), as the USSD
    activation does."""
    guardian = session.query(Guardian).filter_by(phone=phone).one()
    for learner in learners:
        link = session.query(GuardianLink).filter_by(guardian_id=guardian.id, learner_id=learner.id).one()
        link.verified_at = datetime.now(UTC)
    session.flush()


def add_result(session, *, exam: str = "KCSE", year: int = 2025, index: str = "36611030002",
               name: str = "Jane Wambui Wanjiku", mean: str = "B+", points: int | None = 62,
               subjects: str = "ENG:B+;KIS:A-;MAT:A", learner: Learner | None = None,
               released: bool = True) -> ExamResult:
    series = session.query(ExamSeries).filter_by(exam=exam, year=year).one_or_none()
    if series is None:
        series = ExamSeries(exam=exam, year=year)
        session.add(series)
    if released and series.released_at is None:
        series.released_at = datetime.now(UTC)
    session.flush()
    result = ExamResult(series_id=series.id, index_number=index, candidate_name=name, mean_grade=mean,
                        points=points, subjects=subjects, learner_id=learner.id if learner else None)
    session.add(result)
    session.flush()
    return result


# --- runtimes -----------------------------------------------------------------------------------


@contextmanager
def job_runtime(tmp_path: Path, database: Database, redis, redis_url: str | None = None,
                **overrides) -> Iterator[Runtime]:
    """A runtime that SMS jobs of this process use, forgotten afterwards."""
    runtime = Runtime.build(make_settings(tmp_path, database, redis_url, **overrides), db=database, redis=redis)
    use_runtime(runtime)
    try:
        yield runtime
    finally:
        use_runtime(None)


def at_settings(fake: FakeAT, **extra) -> dict[str, object]:
    return dict(sms_backend="africastalking", at_username="elimu", at_api_key="test-api-key",
                at_api_base_url=fake.url, at_sender_id="ELIMU", at_short_code="22384",
                sms_rate_per_second=0.0) | extra


# --- the fake AT server -------------------------------------------------------------------------


@dataclass
class Scripted:
    """One scripted answer: ``status``/``body``/``content_type``, or per-recipient ``codes`` inside a
    normal 201, after ``delay`` seconds."""

    status: int = 201
    body: str | None = None
    content_type: str = "application/json"
    codes: dict[str, int] | None = None  # number -> statusCode (others 101)
    delay: float = 0.0


@dataclass
class Seen:
    path: str
    form: dict[str, str]
    headers: dict[str, str]
    client_port: int = 0  # the sender's end of the connection: requests on one kept connection share it

    @property
    def recipients(self) -> list[str]:
        return self.form.get("to", "").split(",") if self.form.get("to") else []


@dataclass
class FakeAT:
    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    script: list[Scripted] = field(default_factory=list)
    api_key: str = "test-api-key"
    delay: float = 0.0  # seconds before every unscripted answer
    in_flight: int = 0  # requests being answered now
    most_in_flight: int = 0  # the most answered at once
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def then(self, *answers: Scripted) -> FakeAT:
        self.script.extend(answers)
        return self

    def sent_to(self, number: str) -> int:
        """How many requests carried ``number``."""
        return sum(seen.recipients.count(number) for seen in self.requests)

    def __call__(self, environ, start_response):
        request = Request(environ)
        form = {key: values[0] for key, values in parse_qs(request.get_data(as_text=True)).items()}
        with self._lock:
            self.requests.append(Seen(request.path, form, dict(request.headers), int(environ.get("REMOTE_PORT") or 0)))
            scripted = self.script.pop(0) if self.script else Scripted(delay=self.delay)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return self._respond(environ, start_response, request, form, scripted)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _respond(self, environ, start_response, request, form, scripted):
        if scripted.delay:
            time.sleep(scripted.delay)
        if request.headers.get("apiKey") != self.api_key:
            response = Response("The supplied authentication is invalid", status=401, content_type="text/plain")
        elif scripted.body is not None:
            response = Response(scripted.body, status=scripted.status, content_type=scripted.content_type)
        else:
            response = Response(json.dumps(self._answer(form, scripted.codes or {})), status=scripted.status,
                                content_type=scripted.content_type)
        return response(environ, start_response)

    def _answer(self, form: dict[str, str], codes: dict[str, int]) -> dict[str, object]:
        recipients = []
        for number in form.get("to", "").split(","):
            code = codes.get(number, 101)
            accepted = code in (100, 101, 102)
            recipients.append({
                "statusCode": code, "number": number, "status": "Success" if accepted else "Failed",
                "cost": "KES 0.8000" if accepted else "0",
                "messageId": f"ATXid_{next(self._ids)}" if accepted else "None",
            })
        return {"SMSMessageData": {"Message": f"Sent to {len(recipients)}", "Recipients": recipients}}


class _KeepAliveHandler(BaseHTTPRequestHandler):
    """Hands each request to the server's WSGI app and keeps the connection for the next one."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": url.path, "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": str(self.server.server_port), "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": self.client_address[0], "REMOTE_PORT": str(self.client_address[1]),
            "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO(),
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False, "wsgi.version": (1, 0),
        }
        environ.update({f"HTTP_{name.upper().replace('-', '_')}": value for name, value in self.headers.items()
                        if name.lower() not in ("content-type", "content-length")})
        answer: list = []
        data = b"".join(self.server.app(environ, lambda status, headers, exc_info=None: answer.extend((status, headers))))
        status, headers = answer
        self.send_response(int(status.split()[0]))
        for name, value in headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet in tests
        pass


class _Server(ThreadingHTTPServer):
    """The fake's server: werkzeug's listen backlog (senders connect 16 at a time), and every
    connection it accepted closed when it stops, so a connection a sending thread keeps can never
    reach a later test's server on a reused port."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, app: FakeAT) -> None:
        super().__init__(("127.0.0.1", 0), _KeepAliveHandler)
        self.app = app
        self.accepted: list[socket.socket] = []

    def get_request(self):
        connection, address = super().get_request()
        self.accepted.append(connection)
        return connection, address

    def close_all(self) -> None:
        self.shutdown()
        self.server_close()
        for connection in self.accepted:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


@contextmanager
def fake_at_server(tls: tuple[str, str] | None = None) -> Iterator[FakeAT]:
    """A fake AT on a free port; over TLS with ``tls`` (certificate and key files)."""
    fake = FakeAT()
    server = _Server(fake)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    fake.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_port}/version1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.close_all()
        thread.join(5)


def work_queues(runtime: Runtime) -> None:
    """Run an SMS worker in this thread until the queues are empty (retries due now included)."""
    from workers.worker import run_worker

    run_worker(runtime, burst=True, logging_level="WARNING")


def outbox_rows(runtime: Runtime) -> list:
    from registry.models import OutboundMessage

    with runtime.db.session() as session:
        return list(session.query(OutboundMessage).order_by(OutboundMessage.id))
