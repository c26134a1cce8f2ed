"""The web service stops waiting on PostgreSQL: a callback stuck behind a lock gets its deliberate
answer (a busy END, a 503 that AT retries) instead of holding a web thread; the CLI and workers
are not cut off. Real PostgreSQL and Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text

from gateway.app import create_app
from gateway.runtime import Runtime
from registry.db import Database, postgres_connect_args
from registry.models import InboundMessage
from tests.conftest import TEST_SECRET, make_settings
from tests.ussd.support import PHONE, Phone, SmsCapture, World

PG = "postgresql+psycopg://elimu@db.example/elimu"


@pytest.mark.parametrize(("url", "environ", "expected"), [
    (PG, {}, {"connect_timeout": 3, "options": "-c statement_timeout=3000"}),
    (f"{PG}?connect_timeout=10", {}, {"options": "-c statement_timeout=3000"}),
    (PG, {"PGCONNECT_TIMEOUT": "9"}, {"options": "-c statement_timeout=3000"}),
    (f"{PG}?options=-c%20search_path%3Delimu", {},
     {"connect_timeout": 3, "options": "-c search_path=elimu -c statement_timeout=3000"}),
    (PG, {"PGOPTIONS": "-c work_mem=64MB"}, {"connect_timeout": 3, "options": "-c work_mem=64MB -c statement_timeout=3000"}),
    (f"{PG}?options=-c%20statement_timeout%3D60000", {}, {"connect_timeout": 3}),  # the operator's own
    (PG, {"PGOPTIONS": "-c statement_timeout=0"}, {"connect_timeout": 3}),
])
def test_the_url_and_libpq_environment_win(url, environ, expected):
    assert postgres_connect_args(url, statement_timeout_ms=3000, connect_timeout_s=3, environ=environ) == expected


def test_no_limits_asked_none_set():
    assert postgres_connect_args(PG, environ={}) == {}
    assert postgres_connect_args(PG, statement_timeout_ms=0, connect_timeout_s=0, environ={}) == {}
    assert postgres_connect_args(PG, connect_timeout_s=1, environ={}) == {"connect_timeout": 2}  # libpq's least


@pytest.fixture
def serving(tmp_path, pg_database, real_redis, redis_url) -> Iterator[Runtime]:
    """The web service's runtime as ``create_app`` builds it (its own engine), waits cut at 400 ms."""
    settings = make_settings(tmp_path, pg_database, redis_url, db_statement_timeout_ms=400)
    runtime = Runtime.build(settings, redis=real_redis, serving=True)
    yield runtime
    runtime.close()


def _statement_timeout(database: Database) -> tuple[str, str]:
    with database.transaction() as session:
        in_transaction = session.execute(text("SHOW statement_timeout")).scalar_one()
    (kept,) = database.fetch(text("SHOW statement_timeout"), {})
    return in_transaction, kept[0]


def test_the_web_service_waits_a_bounded_time_the_cli_does_not(serving, tmp_path, pg_database, redis_url):
    assert _statement_timeout(serving.db) == ("400ms", "400ms")  # sessions and the kept connections alike
    with serving.db.engine.connect() as connection:
        assert connection.connection.dbapi_connection.info.get_parameters()["connect_timeout"] == "3"
    cli = Runtime.build(make_settings(tmp_path, pg_database, redis_url))
    try:
        assert _statement_timeout(cli.db) == ("0", "0")  # an import or a migration runs as long as it takes
        with cli.db.engine.connect() as connection:
            assert connection.connection.dbapi_connection.info.get_parameters()["connect_timeout"] == "3"
    finally:
        cli.close()


def _in_thread(call) -> object:
    """``call()`` in a thread, which must finish: without the limit it would wait for the lock forever."""
    out: dict[str, object] = {}
    worker = threading.Thread(target=lambda: out.setdefault("value", call()), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the request was still waiting on PostgreSQL after 30 s"
    return out["value"]


def test_a_code_hop_behind_a_held_sending_lock_answers_busy_and_the_next_dial_works(serving):
    world = World(serving.db, TEST_SECRET)
    world.learner()
    sms = SmsCapture(serving.db)
    serving.db.dispatch = sms
    phone = Phone(create_app(runtime=serving).test_client(), sms, PHONE)
    phone.dial()
    phone.send("1")
    phone.send("12345678")
    with serving.db.engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('otp:' || :phone, 0))"), {"phone": PHONE})
        busy = _in_thread(lambda: phone.send("05092014"))  # the code hop waits for the phone's sending lock
        holder.rollback()
    assert busy == "END Service busy. Please try again in a few minutes."
    assert sms.messages(PHONE) == []
    phone.dial()
    phone.send("1")
    phone.send("12345678")
    assert phone.send("05092014").startswith("CON We sent a 6-digit code by SMS.")
    assert [m.kind.value for m in sms.messages(PHONE)] == ["otp"]


INBOUND = {"from": "+254712345678", "to": "22252", "text": "HELP", "id": "ATXid_in_1",
           "date": "2026-01-09 10:00:00", "networkCode": "63902"}


def test_an_inbound_sms_behind_a_table_lock_gets_503_and_its_retry_is_stored(serving):
    client = create_app(runtime=serving).test_client()
    with serving.db.engine.connect() as holder:
        holder.execute(text("LOCK TABLE inbound_messages IN ACCESS EXCLUSIVE MODE"))  # e.g. a migration
        refused = _in_thread(lambda: client.post("/sms/africastalking/inbound", data=INBOUND))
        holder.rollback()
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "60"  # type: ignore[attr-defined]
    assert b"Traceback" not in refused.data  # type: ignore[attr-defined]
    retried = client.post("/sms/africastalking/inbound", data=INBOUND)  # AT retries it a minute later
    assert retried.status_code == 200
    with serving.db.session() as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 1


def test_a_server_that_refuses_the_limit_is_connected_to_without_it(pg_url, monkeypatch, caplog):
    """PgBouncer, by default, refuses startup parameters it does not know: the service connects
    anyway, without the limit, and says so in the log once (docs/deploy.md says how to keep it)."""
    import psycopg

    real_connect = psycopg.connect
    refused: list[str] = []

    def bouncer(*args, **kwargs):
        if "statement_timeout" in kwargs.get("options", ""):
            refused.append(kwargs["options"])
            raise psycopg.OperationalError("unsupported startup parameter in options: statement_timeout")
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", bouncer)
    url = f"{pg_url}?options=-c%20search_path%3Dpublic"
    database = Database(url, statement_timeout_ms=400, connect_timeout_s=3, pool_size=2, max_overflow=0)
    try:
        assert _statement_timeout(database) == ("0", "0")
        with database.engine.connect() as connection:
            assert connection.execute(text("SHOW search_path")).scalar_one() == "public"  # the URL's own kept
    finally:
        database.dispose()
    assert refused == ["-c search_path=public -c statement_timeout=400"]  # asked once, then not again
    assert [r.getMessage() for r in caplog.records if "refused" in r.getMessage()][0].startswith(
        "the database refused '-c statement_timeout=400'")
