"""Helpers for USSD tests: registry data, a controllable clock, captured SMS, and conversation scripts.

A conversation script is a multi-line string:

    dial                      # a new session (text "")
    redial                    # a new session, declining any offer to resume the last one
    < CON Welcome to Elimu    # the expected screen, one line per "<" line
    < 1. Activate account
    > 1                       # the caller's input ({otp} = the last code sent to this phone)
    < CON Enter the ...
    < ...                     # a last "..." line: the screen only has to start with the lines above
"""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from registry.db import Database, PendingMessage
from registry.models import (
    ExamResult,
    ExamSeries,
    Guardian,
    GuardianLink,
    Institution,
    Learner,
    OutboundMessage,
)
from registry.services.secrets import PinHasher

PHONE = "+254712345678"
OTHER_PHONE = "+254722000111"
STRANGER = "+254733999888"
PIN = "4826"
_sessions = itertools.count(1)


class Clock:
    """The time every USSD component reads (``runtime.extras['clock']``); tests move it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class SmsCapture:
    """Records each committed outbox row's clear text (OTPs) as the SMS workers would get it."""

    db: Database
    clear: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, pending: list[PendingMessage]) -> None:
        with self.lock:
            self.clear.extend((p.message_id, p.clear_body) for p in pending if p.clear_body)

    def messages(self, phone: str | None = None) -> list[OutboundMessage]:
        with self.db.transaction() as session:
            rows = session.query(OutboundMessage).order_by(OutboundMessage.id).all()
        return [r for r in rows if phone is None or r.recipient == phone]

    def clear_bodies(self, phone: str) -> list[str]:
        """What each message to ``phone`` says on the handset (OTPs in clear)."""
        clear = dict(self.clear)
        return [clear.get(m.id, m.body) for m in self.messages(phone)]

    def otps(self, phone: str) -> list[str]:
        ids = {m.id for m in self.messages(phone) if m.kind.value == "otp"}
        return [re.search(r"\b\d{6}\b", body).group() for mid, body in self.clear if mid in ids]  # type: ignore[union-attr]

    def last_otp(self, phone: str) -> str:
        codes = self.otps(phone)
        assert codes, f"no OTP was sent to {phone}"
        return codes[-1]


@dataclass
class World:
    """Registry rows for tests, made directly through the models."""

    db: Database
    secret: str

    def school(self, code: str = "WE4T", name: str = "Kilimani Primary School", county: str = "047") -> int:
        with self.db.transaction() as session:
            found = session.query(Institution).filter_by(code=code).first()
            if found:
                return found.id
            inst = Institution(code=code, name=name, county_code=county)
            session.add(inst)
            session.flush()
            return inst.id

    def learner(
        self, *, first: str = "Jane", last: str = "Wanjiku", born: date = date(2014, 9, 5), upi: str = "A1B2C3",
        birth_cert: str | None = "12345678", assessment: str | None = "K2023000456", grade: str = "Grade 6",
        school: str = "WE4T", school_name: str = "Kilimani Primary School", phones: tuple[str, ...] = (PHONE,),
        verified: bool = False,
    ) -> int:
        institution_id = self.school(school, school_name)
        with self.db.transaction() as session:
            learner = Learner(upi=upi, first_name=first, last_name=last, date_of_birth=born, gender="F",
                              birth_certificate_no=birth_cert, assessment_no=assessment, grade=grade,
                              institution_id=institution_id)
            session.add(learner)
            session.flush()
            for phone in phones:
                guardian = session.query(Guardian).filter_by(phone=phone).first()
                if guardian is None:
                    guardian = Guardian(phone=phone)
                    session.add(guardian)
                    session.flush()
                session.add(GuardianLink(learner_id=learner.id, guardian_id=guardian.id,
                                         verified_at=datetime(2026, 1, 1, tzinfo=UTC) if verified else None))
            return learner.id

    def activate(self, phone: str = PHONE, pin: str = PIN) -> None:
        """An activated account whose every link is verified (as after activation)."""
        with self.db.transaction() as session:
            guardian = session.query(Guardian).filter_by(phone=phone).one()
            guardian.pin_hash = PinHasher(self.secret).hash(pin)
            guardian.activated_at = datetime(2026, 1, 1, tzinfo=UTC)
            for link in guardian.links:
                link.verified_at = link.verified_at or datetime(2026, 1, 1, tzinfo=UTC)

    def result(self, learner_id: int, exam: str, year: int, index: str, *, released: bool = True) -> None:
        with self.db.transaction() as session:
            series = session.query(ExamSeries).filter_by(exam=exam, year=year).first()
            if series is None:
                series = ExamSeries(exam=exam, year=year,
                                    released_at=datetime(2026, 1, 9, tzinfo=UTC) if released else None)
                session.add(series)
                session.flush()
            session.add(ExamResult(series_id=series.id, index_number=index, learner_id=learner_id,
                                   candidate_name="X", mean_grade="B+", points=60, subjects=""))


class Phone:
    """A handset dialling the USSD service through the HTTP endpoint."""

    def __init__(self, client, sms: SmsCapture, phone: str = PHONE, wire_phone: str | None = None) -> None:
        self.client = client
        self.sms = sms
        self.phone = phone
        self.wire_phone = wire_phone or phone
        self.session_id = ""
        self.inputs: list[str] = []
        self.screens: list[str] = []

    def post(self, text: str, session_id: str | None = None) -> str:
        response = self.client.post("/ussd/africastalking", data={
            "sessionId": session_id or self.session_id, "phoneNumber": self.wire_phone,
            "serviceCode": "*384*1234#", "networkCode": "63902", "text": text})
        assert response.status_code == 200, response.data
        assert response.mimetype == "text/plain"
        body = response.get_data(as_text=True)
        self.screens.append(body)
        return body

    def dial(self) -> str:
        self.session_id = f"ATUid_test_{next(_sessions)}"
        self.inputs = []
        return self.post("")

    def send(self, value: str) -> str:
        self.inputs.append(value.replace("{otp}", self.sms.last_otp(self.phone)) if "{otp}" in value else value)
        return self.post("*".join(self.inputs))

    def script(self, script: str) -> list[str]:
        """Run a conversation script (see the module docstring); returns the screens seen."""
        seen: list[str] = []
        expected: list[str] = []
        last = ""

        def check() -> None:
            if not expected:
                return
            if expected[-1] == "...":
                want = "\n".join(expected[:-1])
                assert last.startswith(want), f"screen:\n{last}\n--- should start with:\n{want}"
            else:
                want = "\n".join(expected)
                assert last == want, f"screen:\n{last}\n--- expected:\n{want}"
            expected.clear()

        for raw in script.strip("\n").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line in ("dial", "redial"):
                check()
                last = self.dial()
                if line == "redial" and last.startswith("CON Your last session did not finish."):
                    last = self.send("2")
                seen.append(last)
            elif line.startswith(">"):
                check()
                last = self.send(line[1:].strip())
                seen.append(last)
            elif line.startswith("<"):
                expected.append(line[1:].strip() if len(line) > 1 else "")
            else:
                raise ValueError(f"bad script line: {raw!r}")
        check()
        return seen
