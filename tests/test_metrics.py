"""/metrics shows the counters moving after a scripted session: USSD hops by screen, OTPs, SMS, inbound
commands, delivery reports and queue depths."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import fakeredis
import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from gateway import metrics
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
    depth = ("elimu_queue_depth", (("queue", "sms-otp"),))
    assert (queued[depth], after[depth]) == (1, 0)  # the OTP's job waited in its queue, then was worked
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


ROOT = Path(__file__).resolve().parent.parent
ALERT_RULES = ROOT / "deploy" / "prometheus" / "elimu-alerts.yml"
DOCUMENTS = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md", ALERT_RULES])
MENTION = re.compile(r"\b(elimu_[a-z_]+)(\{[^}]*\})?")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"), "gauge": ("",)}


def _exposed() -> dict[str, set[str]]:
    """Every sample name ``/metrics`` can show, with its label names."""
    exposed: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for suffix in SUFFIXES[metric._type]:
                exposed[metric._name + suffix] = set(metric._labelnames) | ({"le"} if suffix == "_bucket" else set())
    for family in metrics.QueueDepthCollector(fakeredis.FakeRedis()).collect():
        exposed[family.name] = {label for sample in family.samples for label in sample.labels}
    return exposed


def _known_values() -> dict[tuple[str, str], set[str]]:
    """The values a label can take where the code fixes them (metric, label -> values)."""
    from gateway.sms.africastalking import DELIVERY_STATUS
    from workers.backends.africastalking import ERROR_LABELS
    from workers.sending import _METRIC_STATUS

    return {("elimu_sms_messages_total", "status"): {*_METRIC_STATUS.values(), "retry"},
            ("elimu_sms_send_errors_total", "error"): set(ERROR_LABELS),
            ("elimu_sms_send_errors_total", "outcome"): {"retry", "failed", "unconfirmed"},
            ("elimu_delivery_reports_total", "status"): {*DELIVERY_STATUS, "other"},
            ("elimu_queue_depth", "queue"): set(metrics.QUEUES),
            ("elimu_queue_oldest_seconds", "queue"): set(metrics.QUEUES),
            ("elimu_up", "dependency"): {"redis", "database"},
            ("elimu_callbacks_refused_total", "reason"): {"token", "network", "malformed", "too_large"},
            ("elimu_ussd_hops_total", "outcome"): set(USSD_OUTCOMES),
            ("elimu_degraded_answers_total", "answer"): {"busy", "retry_later", "spooled", "unavailable"},
            ("elimu_degraded_answers_total", "cause"): {"database", "redis", "outage", "error"},
            ("elimu_reconciler_passes_total", "result"): {"done", "locked", "failed"},
            ("elimu_reconciled_total", "action"): {"recorded", "reclaimed", "enqueued", "otp_expired", "inbound",
                                                   "reports", "unconfirmed_expired"}}


# ``gateway.ussd.hops.count_hop``'s outcomes, each documented in docs/operations.md's "USSD hops"
USSD_OUTCOMES = ("con", "end", "replayed", "rate_limited", "not_kenyan", "busy", "locked", "other_phone")


def test_every_ussd_hop_outcome_is_counted_and_documented():
    """An outcome the code counts that the runbook does not explain (``locked``, ``other_phone``) is
    a line on the dashboard no one can read; one documented but never counted is a panel that stays 0."""
    calls = [line.split("count_hop(", 1)[1] for line in (ROOT / "gateway" / "ussd" / "hops.py").read_text().splitlines()
             if "count_hop(" in line and "def count_hop" not in line]
    counted = {word for call in calls for word in re.findall(r'"([a-z_]+)"', call)} - {"none", "screen"}
    assert counted == set(USSD_OUTCOMES)
    runbook = (ROOT / "docs" / "operations.md").read_text()
    assert [outcome for outcome in USSD_OUTCOMES if f"`{outcome}`" not in runbook] == []


def _mentions() -> list[tuple[str, str, dict[str, str | None]]]:
    """Each ``elimu_...`` metric named in the docs: where, the name, and the labels given with it
    (label name -> the quoted value, or None)."""
    found = []
    for document in DOCUMENTS:
        for match in MENTION.finditer(document.read_text()):
            labels: dict[str, str | None] = {}
            for part in (match.group(2) or "{}")[1:-1].split(","):
                label, _, value = part.partition("=")
                if label.strip():
                    labels[label.strip()] = value.strip()[1:-1] if value.strip().startswith('"') else None
            found.append((document.name, match.group(1), labels))
    return found


@pytest.mark.parametrize(("document", "name", "labels"), _mentions())
def test_every_metric_the_docs_name_is_exposed_with_those_labels(document, name, labels):
    """A metric the docs tell operators to watch exists under that name (with ``_total`` where the
    scrape shows it), those labels and those values: docs/operations.md once named
    ``elimu_sms_messages_total{status="rejected"}``, never emitted."""
    exposed = _exposed()
    assert name in exposed, f"{document}: {name} is not on /metrics (it shows {sorted(exposed)})"
    assert set(labels) <= exposed[name], f"{document}: {name} has no label {sorted(set(labels) - exposed[name])}"
    for label, value in labels.items():
        known = _known_values().get((name, label))
        assert value is None or known is None or value in known, f"{document}: {name}{{{label}={value!r}}} never emitted"


def test_the_docs_name_metrics():
    assert {name for _, name, _ in _mentions()} >= {"elimu_queue_depth", "elimu_sms_messages_total",
                                                    "elimu_delivery_reports_total", "elimu_rate_limited_total"}


def test_the_alerting_rules_are_well_formed():
    """deploy/prometheus/elimu-alerts.yml: rules Prometheus loads (each an alert, an expression, a
    duration and what to do), on metrics that exist (checked with the docs above)."""
    import promql_parser
    import yaml

    [group] = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    names = [rule["alert"] for rule in group["rules"]]
    assert len(names) == len(set(names)) >= 8
    for rule in group["rules"]:
        promql_parser.parse(rule["expr"])  # raises on what Prometheus would refuse to load
        assert re.fullmatch(r"[0-9]+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"page", "warn", "info"}, rule["alert"]
        assert {"summary", "action"} <= set(rule["annotations"]), rule["alert"]
    assert {name for document, name, _ in _mentions() if document == ALERT_RULES.name} >= {
        "elimu_queue_depth", "elimu_sms_messages_total", "elimu_ussd_hops_total", "elimu_ussd_hop_seconds_bucket"}
