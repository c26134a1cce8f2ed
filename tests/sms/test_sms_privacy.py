"""Privacy of the SMS side: every SMS flow runs with logging at DEBUG, through the real AT SDK and the fake AT
(including refusals and retries); no log record carries an OTP, a PIN, a learner's name, a UPI or a phone number."""

from __future__ import annotations

import logging
import re

from gateway.app import create_app
from registry.models import MessageKind
from registry.outbox import queue_sms
from registry.services.announcements import announce
from registry.services.transfers import release
from tests.sms.support import (
    Scripted,
    add_guardian,
    add_institution,
    add_learner,
    add_result,
    verify,
    work_queues,
)

PARENT = "+254712345678"
STUDENT = "+254722000111"
OTHER = "+254733000222"
OTP = "482913"


def test_no_secret_in_any_sms_log_line(at_runtime, fake_at, caplog, quick_retries):
    caplog.set_level(logging.DEBUG)
    runtime = at_runtime
    with runtime.db.transaction() as s:
        school = add_institution(s, code="WE4T", name="Kilimani Primary")
        add_institution(s, code="KS5L", name="Kisumu Lakeside")
        jane = add_learner(s, school, first="Wambui", last="Kariuki", upi="QW7E9R", grade="Form 4")
        add_guardian(s, PARENT, jane, active=True)
        verify(s, PARENT, jane)  # PARENT's UPI and nameless results are disclosures; STUDENT gets the generic notice
        add_guardian(s, STUDENT, jane)
        add_result(s, index="36611030002", name="Wambui Njeri Kariuki", mean="B+", learner=jane)
    client = create_app(runtime=runtime).test_client()

    texts = [(STUDENT, "KCSE 36611030002 Wambui"), (PARENT, "KCSE 36611030002"), (PARENT, "UPI"),
             (OTHER, "KCSE 36611030002 Kariuki 2025"), (OTHER, "what is this"), (OTHER, "MSAADA"),
             (OTHER, "STOP"), (STUDENT, "KCSE36611030002")]
    for n, (sender, body) in enumerate(texts):
        client.post("/sms/africastalking/inbound", data={"from": sender, "to": "22384", "text": body,
                                                         "id": f"priv-{n}", "date": "2026-01-09 10:00:00"})
    fake_at.then(Scripted(status=500, body="Internal Server Error", content_type="text/plain"),
                 Scripted(codes={OTHER: 403}))
    with runtime.db.transaction() as s:
        queue_sms(s, PARENT, MessageKind.OTP, "Elimu code: ******. Valid 5 minutes.",
                  secret=f"Elimu code: {OTP}. Valid 5 minutes.")
        announce(s, school, "Schools reopen on Monday.")
        release(s, "QW7E9R")
    work_queues(runtime)
    for seen in list(fake_at.requests):
        if seen.form.get("to"):
            client.post("/sms/africastalking/delivery", data={"id": "ATXid_unknown", "status": "Failed",
                                                               "phoneNumber": seen.recipients[0],
                                                               "failureReason": "UserInBlackList"})
    assert fake_at.sent_to(PARENT) >= 3  # the flows really ran: replies, the OTP, notices
    assert any(OTP in seen.form.get("message", "") for seen in fake_at.requests)  # the clear code left once

    secrets = {OTP, "QW7E9R", "Wambui", "Kariuki", "Njeri", PARENT, PARENT[1:], STUDENT, STUDENT[1:], OTHER,
               OTHER[1:], "0712345678"}
    standard = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "request_id"}
    logged = "\n".join(
        " ".join([r.getMessage(), r.exc_text or ""]
                 + [str(v) for k, v in r.__dict__.items() if k not in standard and isinstance(v, (str, int))])
        for r in caplog.records
    )
    assert caplog.records, "the flows logged nothing: the test would prove nothing"
    found = [s for s in secrets if re.search(rf"(?<![0-9A-Za-z]){re.escape(s)}(?![0-9A-Za-z])", logged)]
    assert found == [], [line for line in logged.splitlines() if any(s in line for s in found)][:5]
