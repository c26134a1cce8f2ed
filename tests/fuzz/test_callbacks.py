"""Fuzz the four provider callbacks: malformed fields, 5,000-character text, unicode, SQL-ish strings,
raw bodies and header abuse. No answer may be a 5xx; every USSD 200 must be a well-formed screen.

Cases per callback: ELIMU_FUZZ_EXAMPLES (default 2,500, so the four callbacks try 10,000).
"""

from __future__ import annotations

import os
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.figures import report_figure

EXAMPLES = int(os.environ.get("ELIMU_FUZZ_EXAMPLES", "2500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

SQLISH = ["' OR '1'='1", "1; DROP TABLE learners;--", "\" OR 1=1 --", "%' AND 1=0 UNION SELECT upi FROM learners--",
          "\\x00", "${jndi:ldap://x}", "{{7*7}}", "<script>alert(1)</script>", "../../etc/passwd", "NULL",
          "KCSE 36611030002 ' OR ''='", "*#*#*#", "**", "1**2", "0*0*00*00*98", "\u202e1*2", "\x00\x01\x02"]
PHONES = ["+254712345678", "0712345678", "254712345678", "712345678", "+254 712 345 678", "+14155552671",
          "0202222222", "07123", "", "+", "++254712345678", "+2547123456789999", "+254112345678", "tel:+254712345678"]

value = st.one_of(
    st.text(max_size=40),
    st.text(max_size=5000),
    st.text(alphabet="0123456789*#", max_size=200),
    st.sampled_from(SQLISH),
    st.sampled_from(PHONES),
    st.integers().map(str),
)
maybe = st.one_of(st.none(), value)  # None: the field is left out

USSD_FIELDS = ["sessionId", "serviceCode", "phoneNumber", "networkCode", "text"]
EVENT_FIELDS = ["sessionId", "serviceCode", "phoneNumber", "networkCode", "status", "input", "hopsCount",
                "durationInMillis", "cost", "date", "errorMessage", "lastAppResponse", "hopsMetadata"]
INBOUND_FIELDS = ["from", "to", "text", "date", "id", "linkId", "networkCode", "cost"]
DELIVERY_FIELDS = ["id", "status", "phoneNumber", "networkCode", "failureReason", "retryCount"]

headers = st.dictionaries(
    st.sampled_from(["X-Forwarded-For", "X-Request-ID", "User-Agent", "Accept", "X-Real-IP", "Referer",
                     "Accept-Language", "Cookie"]),
    st.text(alphabet=string.printable.replace("\n", "").replace("\r", ""), max_size=300),
    max_size=4,
)
content_types = st.sampled_from([None, "application/x-www-form-urlencoded", "application/json", "text/plain",
                                 "multipart/form-data; boundary=xyz", "application/x-www-form-urlencoded; charset=latin-1",
                                 "garbage/type"])


def _form(fields: list[str], values: list[str | None]) -> dict[str, str]:
    return {k: v for k, v in zip(fields, values, strict=True) if v is not None}


def _check_no_5xx(response, path: str) -> None:
    assert response.status_code < 500, f"{path} answered {response.status_code}: {response.data[:200]!r}"
    assert response.status_code not in (404, 405), f"{path} is not served"


def _check_ussd(response) -> None:
    _check_no_5xx(response, "/ussd/africastalking")
    if response.status_code == 200:
        body = response.get_data(as_text=True)
        assert response.mimetype == "text/plain"
        assert body.startswith(("CON ", "END ")), body[:80]
        assert len(body) <= 160, (len(body), body)
        assert all(ch == "\n" or 32 <= ord(ch) < 127 for ch in body), body
    else:
        assert response.status_code in (400, 403, 413, 415, 429), response.status_code
        assert response.data.strip(), "a 4xx needs a reason"


class Counter:
    def __init__(self) -> None:
        self.cases = 0
        self.statuses: dict[int, int] = {}

    def add(self, status: int) -> None:
        self.cases += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1


@pytest.fixture
def counter(request):
    c = Counter()
    yield c
    name = request.node.name.removeprefix("test_")
    report_figure("fuzz", f"{name}: cases tried", c.cases)
    report_figure("fuzz", f"{name}: answers by status", dict(sorted(c.statuses.items())))
    report_figure("fuzz", f"{name}: 5xx answers", sum(v for k, v in c.statuses.items() if k >= 500))


@FUZZ
@given(values=st.lists(maybe, min_size=5, max_size=5), hdrs=headers)
def test_ussd_callback(client, counter, values, hdrs):
    response = client.post("/ussd/africastalking", data=_form(USSD_FIELDS, values), headers=hdrs)
    counter.add(response.status_code)
    _check_ussd(response)


@FUZZ
@given(values=st.lists(maybe, min_size=len(EVENT_FIELDS), max_size=len(EVENT_FIELDS)), hdrs=headers)
def test_ussd_events_callback(client, counter, values, hdrs):
    response = client.post("/ussd/africastalking/events", data=_form(EVENT_FIELDS, values), headers=hdrs)
    counter.add(response.status_code)
    _check_no_5xx(response, "/ussd/africastalking/events")


@FUZZ
@given(values=st.lists(maybe, min_size=len(INBOUND_FIELDS), max_size=len(INBOUND_FIELDS)), hdrs=headers)
def test_inbound_sms_callback(client, counter, values, hdrs):
    response = client.post("/sms/africastalking/inbound", data=_form(INBOUND_FIELDS, values), headers=hdrs)
    counter.add(response.status_code)
    _check_no_5xx(response, "/sms/africastalking/inbound")
    if response.status_code != 200:
        assert response.data.strip()


@FUZZ
@given(values=st.lists(maybe, min_size=len(DELIVERY_FIELDS), max_size=len(DELIVERY_FIELDS)), hdrs=headers)
def test_delivery_report_callback(client, counter, values, hdrs):
    response = client.post("/sms/africastalking/delivery", data=_form(DELIVERY_FIELDS, values), headers=hdrs)
    counter.add(response.status_code)
    _check_no_5xx(response, "/sms/africastalking/delivery")


@settings(max_examples=max(200, EXAMPLES // 10), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(path=st.sampled_from(["/ussd/africastalking", "/ussd/africastalking/events", "/sms/africastalking/inbound",
                             "/sms/africastalking/delivery"]),
       body=st.binary(max_size=3000), ctype=content_types, hdrs=headers)
def test_raw_bodies_and_content_types(client, counter, path, body, ctype, hdrs):
    kwargs = {"data": body, "headers": hdrs}
    if ctype:
        kwargs["content_type"] = ctype
    response = client.post(path, **kwargs)
    counter.add(response.status_code)
    if path == "/ussd/africastalking":
        _check_ussd(response)
    else:
        _check_no_5xx(response, path)
