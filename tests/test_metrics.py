"""/metrics shows the counters moving after a scripted session: USSD hops by screen, OTPs, SMS, inbound
commands, delivery reports and queue depths."""

from __future__ import annotations

import re
from datetime import date

from prometheus_client.parser import text_string_to_metric_families

from registry.models import Guardian, GuardianLink, Institution, Learner
from tests.sms.support import work_queues

PARENT = "+254712000201"


def _samples(client) -> dict[tuple[str, tuple], float]:
    text = client.get("/metrics").get_data(as_text=True)
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _total(samples, name: str, **labels) -> float:
    want = set(labels.items())
    return sum(v for (n, lbl), v in samples.items() if n == name and want <= set(lbl))


def test_counters_move_after_a_scripted_session(client, runtime):
    with runtime.db.transaction() as s:
        school = Institution(code="WE4T", name="Kamukunji Primary", county_code="047")
        learner = Learner(upi="KX7P9Q", first_name="Jane", last_name="Wanjiku", date_of_birth=date(2013, 9, 5),
                          gender="F", birth_certificate_no="556677", grade="Grade 6", institution=school)
        parent = Guardian(phone=PARENT)
        s.add_all([school, learner, parent, GuardianLink(learner=learner, guardian=parent, relationship_="mother")])
    before = _samples(client)

    sent = []
    dispatch = runtime.db.dispatch
    runtime.db.dispatch = lambda pending: (sent.extend(pending), dispatch(pending))
    for text in ["", "1", "1*556677", "1*556677*05092013"]:
        client.post("/ussd/africastalking", data={"sessionId": "m-1", "phoneNumber": PARENT, "text": text})
    otp = re.search(r"\d{6}", next(p.clear_body for p in sent if p.clear_body)).group(0)
    client.post("/ussd/africastalking", data={"sessionId": "m-1", "phoneNumber": PARENT,
                                              "text": f"1*556677*05092013*{otp}"})
    client.post("/sms/africastalking/inbound", data={"from": PARENT, "to": "22384", "text": "HELP", "id": "m-in-1",
                                                     "date": "2026-01-09 10:00:00"})
    queued = _samples(client)
    work_queues(runtime)
    client.post("/sms/africastalking/delivery", data={"id": "ATXid_unknown", "status": "Success",
                                                      "phoneNumber": PARENT})
    after = _samples(client)

    def moved(name, **labels):
        return _total(after, name, **labels) - _total(before, name, **labels)

    assert moved("elimu_ussd_hops_total") >= 5
    assert moved("elimu_ussd_hops_total", screen="main") >= 1
    assert moved("elimu_ussd_hop_seconds_count") >= 5
    assert moved("elimu_otp_total", event="sent") == 1
    assert moved("elimu_otp_total", event="verified") == 1
    assert moved("elimu_sms_messages_total", kind="otp") >= 1
    assert moved("elimu_inbound_commands_total", command="help") == 1
    assert moved("elimu_delivery_reports_total", status="Success") == 1
    assert _total(queued, "elimu_queue_depth", queue="sms-otp") >= 0
    assert ("elimu_queue_depth", (("queue", "sms-inbound"),)) in after


def test_the_content_type_is_the_exposition_formats_with_one_charset(client):
    """A media type with a parameter twice (werkzeug adds a charset to the library's own when given
    it as a mimetype) is refused by Go's mime parser, and so by Prometheus' scrapes."""
    from prometheus_client import CONTENT_TYPE_LATEST

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    parameters = [p.split("=")[0].strip() for p in response.headers["Content-Type"].split(";")[1:]]
    assert len(parameters) == len(set(parameters)) and "charset" in parameters
