"""PostgreSQL restarted under load: USSD hops, inbound SMS and delivery reports keep flowing into a private
server that is killed (immediate shutdown, as in a crash) and comes back two seconds later.

Every callback must get a deliberate answer (USSD: a well-formed screen; inbound SMS: 200 or 503 with
Retry-After, which AT retries; delivery reports: 200, spooled while the database is down). Afterwards
nothing acknowledged is lost and nothing is answered twice.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text

from gateway.app import create_app
from gateway.degraded import replay_spool
from gateway.runtime import Runtime
from registry.db import Database
from registry.models import (
    Base,
    InboundMessage,
    MessageKind,
    MessageStatus,
    OutboundMessage,
    utcnow,
)
from tests.conftest import make_settings
from tests.faults.support import Family, Results, seed_school
from tests.figures import report_figure
from workers.reconcile import reconcile
from workers.worker import run_worker

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

PHONES = [f"+2547120{n:05d}" for n in range(40)]
SENDERS = [f"+2547130{n:05d}" for n in range(300)]
REPORTS = 300


@pytest.fixture
def restart_runtime(private_pg, real_redis, redis_url, tmp_path):
    database = Database(private_pg.url, pool_size=5, max_overflow=5)
    Base.metadata.drop_all(database.engine)
    Base.metadata.create_all(database.engine)
    settings = make_settings(tmp_path, database, redis_url)
    runtime = Runtime.build(settings, db=database, redis=real_redis)
    yield runtime
    database.dispose()


def _seed(runtime: Runtime) -> None:
    seed_school(runtime, PHONES,
                Family(upi="F", first="Amina", last="Otieno", born=date(2010, 1, 1), gender="F", birth_cert="BC",
                       grade="Form 3", relationship="mother"),
                Results(index="36611030", count=len(SENDERS), mean_grade="B+", points=62,
                        subjects="ENG:B+;KIS:A-;MAT:B"),
                notices=REPORTS, notice_status=MessageStatus.SENT, notice_ids="ATXid_fault")


def test_postgres_restarted_under_load(private_pg, restart_runtime):
    runtime = restart_runtime
    _seed(runtime)
    app = create_app(runtime=runtime)
    answers: Counter[str] = Counter()
    bad: list[str] = []
    inbound_status: dict[int, int] = {}
    stop = threading.Event()

    def ussd() -> None:
        client = app.test_client()
        n = 0
        while not stop.is_set():
            k = n % len(PHONES)
            for hop_text in ("", "1", f"1*BC{k}"):
                r = client.post("/ussd/africastalking", data={"sessionId": f"f-{n}", "phoneNumber": PHONES[k],
                                                              "serviceCode": "*384*1234#", "text": hop_text})
                body = r.get_data(as_text=True)
                if r.status_code != 200 or not body.startswith(("CON ", "END ")) or len(body) > 160:
                    bad.append(f"ussd {r.status_code} {body[:60]!r}")
                answers["ussd busy END" if "busy" in body else "ussd screen"] += 1
            n += 1

    def inbound() -> None:
        client = app.test_client()
        for n, sender in enumerate(SENDERS):
            if stop.is_set():
                break
            r = client.post("/sms/africastalking/inbound", data=_inbound(n, sender))
            inbound_status[n] = r.status_code
            if r.status_code == 503:
                assert r.headers.get("Retry-After")
                answers["inbound 503 retry-after"] += 1
            elif r.status_code == 200:
                answers["inbound 200"] += 1
            else:
                bad.append(f"inbound {r.status_code}")
            time.sleep(0.01)

    def delivery() -> None:
        client = app.test_client()
        for n in range(REPORTS):
            if stop.is_set():
                break
            r = client.post("/sms/africastalking/delivery", data={"id": f"ATXid_fault{n}", "status": "Success",
                                                                   "phoneNumber": PHONES[n % len(PHONES)]})
            if r.status_code != 200:
                bad.append(f"delivery {r.status_code}")
            answers["delivery spooled" if r.data.startswith(b"OK (spooled)") else "delivery applied"] += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=f) for f in (ussd, inbound, delivery)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    private_pg.restart(down_for=2.0)
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join(60)

    # AT retries what got 503 (every minute in life; at once here), and sends what the load did not reach.
    client = app.test_client()
    for n, sender in enumerate(SENDERS):
        if inbound_status.get(n) != 200:
            for _ in range(20):
                r = client.post("/sms/africastalking/inbound", data=_inbound(n, sender))
                if r.status_code == 200:
                    break
                time.sleep(0.25)
            inbound_status[n] = r.status_code
    replay_spool(runtime)
    for n in range(REPORTS):  # reports the load did not reach
        client.post("/sms/africastalking/delivery", data={"id": f"ATXid_fault{n}", "status": "Success",
                                                           "phoneNumber": PHONES[n % len(PHONES)]})
    run_worker(runtime, burst=True, logging_level="WARNING")
    # A drain that failed in the outage is retried by RQ later, or its messages are handed over again by the
    # reconciler after its grace period: let those minutes pass.
    reconcile(runtime, now=utcnow() + timedelta(hours=1))
    run_worker(runtime, burst=True, logging_level="WARNING")

    with runtime.db.session() as s:
        stored = set(s.scalars(select(InboundMessage.provider_id)))
        replies = Counter(s.scalars(select(OutboundMessage.recipient).where(OutboundMessage.kind == MessageKind.REPLY)))
        undelivered = s.scalar(select(func.count()).select_from(OutboundMessage).where(
            OutboundMessage.provider_message_id.like("ATXid_fault%"),
            OutboundMessage.status != MessageStatus.DELIVERED))
        s.execute(text("SELECT 1"))
    lost_inbound = sum(1 for n in range(len(SENDERS)) if f"fault-in-{n}" not in stored)
    unanswered = sum(1 for sender in SENDERS if replies[sender] == 0)
    duplicated = sum(c - 1 for c in replies.values() if c > 1)
    for name, value in sorted(answers.items()):
        report_figure("fault", f"pg restart: {name}", value)
    report_figure("fault", "pg restart: 5xx other than 503 / malformed answers", len(bad))
    report_figure("fault", "pg restart: inbound SMS lost", lost_inbound)
    report_figure("fault", "pg restart: inbound SMS unanswered", unanswered)
    report_figure("fault", "pg restart: replies duplicated", duplicated)
    report_figure("fault", "pg restart: delivery reports lost", undelivered)
    assert bad == []
    assert answers["ussd busy END"] > 0 and answers["ussd screen"] > 0, answers  # the outage was felt and survived
    assert lost_inbound == 0 and unanswered == 0 and duplicated == 0
    assert undelivered == 0


def _inbound(n: int, sender: str) -> dict[str, str]:
    return {"from": sender, "to": "22252", "text": f"KCSE 36611030{n:03d} Amina", "id": f"fault-in-{n}",
            "date": "2026-01-09 10:00:00", "networkCode": "63902"}
