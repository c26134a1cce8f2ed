"""The audit trail and the purge, on SQLite and PostgreSQL, and through the CLI."""

import json
from datetime import date, timedelta

from click.testing import CliRunner
from sqlalchemy import select

from registry.models import (
    Institution,
    Learner,
    MessageKind,
    OutboundMessage,
    Priority,
    UssdSessionEvent,
    utcnow,
)
from registry.services.audit import history, record_disclosure
from registry.services.retention import PURGED, purge


def _learner(session, upi="ABC234"):
    school = Institution(code="WE4T", name="Kamukunji High", county_code="047")
    learner = Learner(upi=upi, first_name="Jane", last_name="Wanjiku", date_of_birth=date(2010, 1, 2),
                      gender="F", grade="Form 3", institution=school)
    session.add(learner)
    session.flush()
    return learner


def test_history_by_learner_and_phone(database):
    with database.transaction() as s:
        learner = _learner(s)
        record_disclosure(s, phone="+254712345678", learner_id=learner.id, action="upi_sent", channel="ussd",
                          reference="sess-1")
        record_disclosure(s, phone="+254700000001", learner_id=learner.id, action="results_replied",
                          channel="sms", reference="msg-9")
    with database.session() as s:
        by_learner = history(s, upi="abc234")
        assert [e.action for e, _ in by_learner] == ["results_replied", "upi_sent"]
        assert all(upi == "ABC234" for _, upi in by_learner)
        by_phone = history(s, phone="+254712345678")
        assert [(e.action, e.reference) for e, _ in by_phone] == [("upi_sent", "sess-1")]
        either = history(s, upi="abc234", phone="+254799999999")  # several: the rows matching any (elimu audit --help)
        assert [e.reference for e, _ in either] == ["msg-9", "sess-1"]


def test_purge_removes_old_bodies_and_events_only(database):
    old = utcnow() - timedelta(days=100)
    with database.transaction() as s:
        s.add_all([
            UssdSessionEvent(session_id="old", created_at=old, updated_at=old),
            UssdSessionEvent(session_id="new"),
            OutboundMessage(recipient="+254712345678", kind=MessageKind.REPLY, body="KCSE 2025 Jane W. mean B+",
                            priority=Priority.REPLY, created_at=old, updated_at=old),
            OutboundMessage(recipient="+254712345678", kind=MessageKind.REPLY, body="recent",
                            priority=Priority.REPLY),
        ])
    with database.transaction() as s:
        counts = purge(s, timedelta(days=90))
    assert (counts.session_events, counts.outbound_bodies) == (1, 1)
    with database.session() as s:
        assert [e.session_id for e in s.query(UssdSessionEvent)] == ["new"]
        assert sorted(m.body for m in s.query(OutboundMessage)) == [PURGED, "recent"]
    with database.transaction() as s:  # idempotent
        assert purge(s, timedelta(days=90)).outbound_bodies == 0


def test_purge_deletes_records_past_their_age_only_when_asked(database):
    from registry.models import AuditEvent

    ancient = utcnow() - timedelta(days=2000)
    with database.transaction() as s:
        learner = _learner(s)
        for at in (ancient, utcnow()):
            record_disclosure(s, phone="+254712345678", learner_id=learner.id, action="upi_sent", channel="sms", at=at)
            s.add(OutboundMessage(recipient="+254712345678", kind=MessageKind.UPI, body="UPI ABC234",
                                  priority=Priority.OTP, created_at=at, updated_at=at))
    with database.transaction() as s:
        assert purge(s, timedelta(days=90)).audit_rows == 0  # the texts' age alone keeps every record
    with database.transaction() as s:
        counts = purge(s, timedelta(days=90), timedelta(days=1827))
    assert (counts.audit_rows, counts.outbound_rows, counts.inbound_rows) == (1, 1, 0)
    with database.session() as s:
        assert len(s.scalars(select(AuditEvent)).all()) == len(s.scalars(select(OutboundMessage)).all()) == 1


def test_the_records_go_after_their_own_age_the_texts_after_theirs(runtime, monkeypatch):
    """The audit trail and the message rows (billing records) outlive the texts, but not for ever:
    ``elimu purge`` deletes them past ELIMU_RECORDS_RETENTION_DAYS (five years by default)."""
    from gateway import cli as cli_module
    from registry.models import Announcement, AuditEvent, InboundMessage

    ancient, old = utcnow() - timedelta(days=6 * 365), utcnow() - timedelta(days=100)
    with runtime.db.transaction() as s:
        learner = _learner(s)
        for at, ref in ((ancient, "ancient"), (old, "old")):
            record_disclosure(s, phone="+254712345678", learner_id=learner.id, action="results_replied",
                              channel="sms", reference=ref, detail="KCSE 2019 19301012001", at=at)
            s.add_all([
                OutboundMessage(recipient="+254712345678", kind=MessageKind.REPLY, body="KCSE 2019 Jane W. mean B+",
                                priority=Priority.REPLY, created_at=at, updated_at=at, cost=ref),
                InboundMessage(provider_id=ref, sender="+254712345678", text="KCSE 19301012001 Wanjiku",
                               created_at=at, updated_at=at),
            ])
        s.add_all([Announcement(institution_code="WE4T", body="Well done Jane Wanjiku, our best KCSE candidate",
                                created_at=old, updated_at=old),
                   Announcement(institution_code="WE4T", body="School reopens on Monday")])
    monkeypatch.setattr(cli_module.Context, "runtime", property(lambda self: runtime))
    runner = CliRunner()
    refused = runner.invoke(cli_module.cli, ["purge", "--older-than", "90"], env={"ELIMU_RECORDS_RETENTION_DAYS": "30"})
    assert refused.exit_code == 2 and "the records outlive the texts" in refused.output

    done = runner.invoke(cli_module.cli, ["purge"])

    assert done.exit_code == 0, done.output
    assert "1 audit rows, 1 outbound and 1 inbound message rows (older than 1827 days)" in done.output
    assert "1 announcement texts" in done.output
    assert "0 guardians with no learner, 0 phone settings (idle for 1827 days)" in done.output
    with runtime.db.session() as s:
        assert [e.reference for e in s.scalars(select(AuditEvent))] == ["old"]
        assert [(m.cost, m.body) for m in s.scalars(select(OutboundMessage))] == [("old", PURGED)]
        assert [(m.provider_id, m.text) for m in s.scalars(select(InboundMessage))] == [("old", PURGED)]
        assert sorted(a.body for a in s.scalars(select(Announcement))) == sorted([PURGED, "School reopens on Monday"])
    shorter = runner.invoke(cli_module.cli, ["purge"], env={"ELIMU_RECORDS_RETENTION_DAYS": "90"})
    assert shorter.exit_code == 0 and "1 audit rows" in shorter.output
    with runtime.db.session() as s:
        assert s.scalars(select(AuditEvent)).all() == [] and s.scalars(select(InboundMessage)).all() == []


def test_audit_cli(runtime, monkeypatch):
    from gateway import cli as cli_module

    with runtime.db.transaction() as s:
        learner = _learner(s)
        record_disclosure(s, phone="+254712345678", learner_id=learner.id, action="status_shown",
                          channel="ussd", reference="sess-7")
    monkeypatch.setattr(cli_module.Context, "runtime", property(lambda self: runtime))
    runner = CliRunner()
    result = runner.invoke(cli_module.cli, ["audit", "--phone", "0712 345 678", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["action"] == "status_shown"
    text = runner.invoke(cli_module.cli, ["audit", "--learner", "ABC234"])
    assert "status_shown" in text.output and "sess-7" in text.output
    assert text.output.splitlines()[0].split() == ["at", "(UTC)", "phone", "learner", "action", "via", "ref", "detail"]
    bad = runner.invoke(cli_module.cli, ["audit", "--phone", "020 2222222"])
    assert bad.exit_code == 2 and "landline" in bad.output
    none = runner.invoke(cli_module.cli, ["audit"])
    assert none.exit_code == 2 and "--index NUMBER" in none.output
    purged = runner.invoke(cli_module.cli, ["purge", "--older-than", "30"])
    assert purged.exit_code == 0 and "purged:" in purged.output


def test_results_sent_are_found_by_index_number_and_by_the_learner_linked_later(runtime, monkeypatch):
    """A result imported without a UPI is sent to a phone abroad; the audit row names the index
    number, so ``--index`` finds it, and ``--learner`` too once the result is linked to the learner."""
    from gateway import cli as cli_module
    from registry.models import ExamResult, ExamSeries
    from registry.services.sms_commands import parse
    from registry.services.sms_replies import OpenGate, respond
    from tests.sms.support import add_result

    with runtime.db.transaction() as s:
        add_result(s, index="19301012001", name="Jane Wanjiku", year=2026)
        reply = respond(s, message_id=7, phone="+447700900123", command=parse("KCSE 19301012001 Wanjiku"),
                        stored_language=None, gate=OpenGate(), ussd_code="*384*1234#")
    assert reply.text.startswith("KCSE 2026 19301012001: Mean grade B+")
    monkeypatch.setattr(cli_module.Context, "runtime", property(lambda self: runtime))
    runner = CliRunner()
    by_index = json.loads(runner.invoke(cli_module.cli, ["audit", "--index", "19301012001", "--json"]).output)
    assert [(r["action"], r["phone"], r["learner"], r["detail"]) for r in by_index] == [
        ("results_replied", "+447700900123", None, "KCSE 2026 19301012001")]
    by_phone = runner.invoke(cli_module.cli, ["audit", "--phone", "+44 7700 900123", "--json"])
    assert by_phone.exit_code == 0 and json.loads(by_phone.output) == by_index
    with runtime.db.transaction() as s:
        learner = _learner(s)
        s.query(ExamResult).update({"learner_id": learner.id})
        assert s.query(ExamSeries).count() == 1
    by_learner = json.loads(runner.invoke(cli_module.cli, ["audit", "--learner", "ABC234", "--json"]).output)
    assert [r["detail"] for r in by_learner] == ["KCSE 2026 19301012001"]
    assert json.loads(runner.invoke(cli_module.cli, ["audit", "--index", "19301012002", "--json"]).output) == []


def test_results_sent_of_one_series_are_listed_for_a_breach_notice(runtime, monkeypatch):
    """After a release made too early, the operator lists every phone that was answered with that
    series' results (``--series``), and only those: not another year's, nor another exam's."""
    from gateway import cli as cli_module
    from registry.services.audit import RESULTS_ACTION

    with runtime.db.transaction() as s:
        for phone, detail in (("+254712345678", "KCSE 2025 19301012001"), ("+254722000111", "KCSE 2025 19301012002"),
                              ("+254733000222", "KCSE 2024 19301012001"), ("+254744000333", "KCPE 2025 19301012001")):
            record_disclosure(s, phone=phone, learner_id=None, action=RESULTS_ACTION, channel="sms", reference="1",
                              detail=detail)
        record_disclosure(s, phone="+254755000444", learner_id=None, action="upi_sent", channel="sms",
                          reference="2", detail="KCSE 2025 19301012003")  # not a results reply
    monkeypatch.setattr(cli_module.Context, "runtime", property(lambda self: runtime))
    runner = CliRunner()
    listed = runner.invoke(cli_module.cli, ["audit", "--series", "kcse", "2025", "--json"])
    assert listed.exit_code == 0, listed.output
    assert sorted(r["phone"] for r in json.loads(listed.output)) == ["+254712345678", "+254722000111"]
    either = json.loads(runner.invoke(cli_module.cli, ["audit", "--series", "KCPE", "2025", "--phone", "0733000222",
                                                       "--json"]).output)
    assert sorted(r["detail"] for r in either) == ["KCPE 2025 19301012001", "KCSE 2024 19301012001"]
    bad_exam = runner.invoke(cli_module.cli, ["audit", "--series", "GCSE", "2025"])
    assert bad_exam.exit_code == 2 and "exam must be one of" in bad_exam.output
    bad_year = runner.invoke(cli_module.cli, ["audit", "--series", "KCSE", "25"])
    assert bad_year.exit_code == 2 and "year must be four digits" in bad_year.output


def _results_replies(s, details: list[str]) -> None:
    from registry.services.audit import RESULTS_ACTION

    for number, detail in enumerate(details):
        record_disclosure(s, phone=f"+2547120000{number:02d}", learner_id=None, action=RESULTS_ACTION,
                          channel="sms", reference=str(number), detail=detail)


def test_an_index_number_finds_the_results_replies_ending_in_it_and_only_those(database):
    """``--index`` matches the reply's number exactly (the indexed third word of its detail), as
    ``detail LIKE '% NUMBER'`` did for every detail the registry writes: any exam and year, an
    assessment number with '/' or '-', not a number that merely ends the same or a LIKE wildcard."""
    details = ["KCSE 2025 36611030002", "KCPE 2019 36611030002", "KCSE 2025 36611030003", "KCSE 2025 6611030002",
               "KPSEA 2024 KP/2024-0001", "KPSEA 2024 KP/2024-00012"]
    with database.transaction() as s:
        _results_replies(s, details)
        record_disclosure(s, phone="+254799000000", learner_id=None, action="upi_sent", channel="sms",
                          reference="x", detail="KCSE 2025 36611030002")  # not a results reply
    with database.session() as s:
        for number in ("36611030002", "6611030002", "kp/2024-0001", " KP/2024-00012 ", "3661103000_", "%0002",
                       "2025 36611030002", "36611030004"):
            wanted = number.strip().upper()
            found = sorted(e.detail for e, _ in history(s, index_number=number))
            assert found == sorted(d for d in details if d.split(" ")[2] == wanted), number
            if not set(wanted) & set(" %_"):  # a number as the registry stores it: what the LIKE found
                assert found == sorted(d for d in details if d.endswith(" " + wanted)), number


def test_a_learner_s_rows_are_its_own_and_the_replies_of_its_linked_numbers(database):
    from registry.models import ExamResult, ExamSeries

    with database.transaction() as s:
        learner = _learner(s)
        other = Learner(upi="XYZ789", first_name="Amina", last_name="Otieno", date_of_birth=date(2011, 3, 4),
                        gender="F", grade="Form 2", institution=learner.institution)
        s.add(other)
        s.flush()
        series = ExamSeries(exam="KCSE", year=2025)
        s.add(series)
        s.flush()
        s.add(ExamResult(series_id=series.id, index_number="36611030002", learner_id=learner.id,
                         candidate_name="Jane Wanjiku", mean_grade="B+", subjects="{}"))
        _results_replies(s, ["KCSE 2025 36611030002", "KCSE 2025 36611030003"])
        record_disclosure(s, phone="+254712345678", learner_id=learner.id, action="status_shown", channel="ussd",
                          reference="sess-1")
        record_disclosure(s, phone="+254712345678", learner_id=other.id, action="status_shown", channel="ussd",
                          reference="sess-2")
    with database.session() as s:
        assert sorted(e.reference for e, _ in history(s, upi="abc234")) == ["0", "sess-1"]
        assert [e.reference for e, _ in history(s, upi="XYZ789")] == ["sess-2"]
        assert history(s, upi="NOSUCH1") == []  # an unknown learner matches no row, not every row
        assert sorted(e.reference for e, _ in history(s, upi="NOSUCH1", index_number="36611030003")) == ["1"]


def _plan_of_history(pg_database, **filters) -> str:
    """PostgreSQL's plan for ``history``'s query, as a prepared statement's generic plan (psycopg
    prepares a query it runs often), over a trail whose statistics are up to date."""
    return _plan_of(pg_database, lambda s: history(s, **filters))


def _plan_of(pg_database, query) -> str:
    """The generic plan of the last statement ``query(session)`` runs, as for ``history``."""
    from sqlalchemy import event, text

    statements: list[tuple[str, object]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG001
        statements.append((statement, parameters))

    event.listen(pg_database.engine, "before_cursor_execute", grab)
    try:
        with pg_database.session() as s:
            query(s)
    finally:
        event.remove(pg_database.engine, "before_cursor_execute", grab)
    statement, parameters = statements[-1]
    with pg_database.engine.begin() as conn:
        conn.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        return "\n".join(conn.exec_driver_sql("EXPLAIN " + statement, parameters).scalars())


def test_the_index_and_learner_filters_are_planned_through_their_indexes(pg_database):
    """Before migration 0007 ``--index`` (``detail LIKE '% NUMBER'``) and ``--learner`` of a learner
    with results read the whole trail: 0.3 s and 0.8 s with 5 million rows (see the migration)."""
    from sqlalchemy import text

    from registry.models import ExamResult, ExamSeries

    with pg_database.transaction() as s:
        learner = _learner(s)
        series = ExamSeries(exam="KCSE", year=2025)
        s.add(series)
        s.flush()
        s.add(ExamResult(series_id=series.id, index_number="36611030002", learner_id=learner.id,
                         candidate_name="Jane Wanjiku", mean_grade="B+", subjects="{}"))
    with pg_database.engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_events (at, phone, learner_id, action, channel, reference, detail) "
                          "SELECT now() - g * interval '1 second', '+2547' || lpad(g::text, 8, '0'), NULL, "
                          "'results_replied', 'sms', g::text, 'KCSE 2025 ' || (36611000000 + g) "
                          "FROM generate_series(1, 20000) g"))
        conn.execute(text("ANALYZE audit_events"))
    by_index = _plan_of_history(pg_database, index_number="36611030002")
    assert "ix_audit_events_index_number" in by_index and "Seq Scan on audit_events" not in by_index, by_index
    by_learner = _plan_of_history(pg_database, upi="ABC234")
    assert "ix_audit_events_index_number" in by_learner and "ix_audit_events_learner" in by_learner, by_learner
    assert "Seq Scan on audit_events" not in by_learner, by_learner


def test_the_newest_replies_of_a_series_and_those_since_a_release_are_read_through_its_index(pg_database):
    """``elimu audit --series`` and ``withdraw``'s count (``detail LIKE 'KCSE 2025 %'``) read the
    whole trail and sorted the series' rows (a million of a results day) for the newest 200; now
    ``ix_audit_events_series`` (migration 0008) holds them in time order."""
    from sqlalchemy import text

    from registry.services.results import answers_since

    with pg_database.engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_events (at, phone, learner_id, action, channel, reference, detail) "
                          "SELECT now() - g * interval '1 second', '+2547' || lpad(g::text, 8, '0'), NULL, "
                          "'results_replied', 'sms', g::text, "
                          "(ARRAY['KCSE 2025 ', 'KCSE 2024 ', 'KPSEA 2025 ', 'KJSEA 2025 '])[g % 4 + 1] || (36611000000 + g) "
                          "FROM generate_series(1, 40000) g"))
        conn.execute(text("INSERT INTO audit_events (at, phone, learner_id, action, channel, reference, detail) "
                          "SELECT now() - g * interval '1 second', '+2547' || lpad(g::text, 8, '0'), NULL, "
                          "'status_shown', 'ussd', g::text, NULL FROM generate_series(1, 10000) g"))
        conn.execute(text("ANALYZE audit_events"))
    newest = _plan_of_history(pg_database, series=("KCSE", 2025))
    assert "ix_audit_events_series" in newest and "Seq Scan on audit_events" not in newest, newest
    assert "Sort" not in newest, newest  # the index's order: the newest 200 read, not the series sorted
    every = _plan_of_history(pg_database, series=("KCSE", 2025), limit=100000)
    assert "ix_audit_events_series" in every and "Seq Scan on audit_events" not in every, every
    with pg_database.session() as s:  # the same rows as the LIKE found, newest first
        rows = history(s, series=("KCSE", 2025), limit=None)
        assert len(rows) == 10000 and {e.detail[:10] for e, _ in rows} == {"KCSE 2025 "}
        assert [e.at for e, _ in rows] == sorted((e.at for e, _ in rows), reverse=True)
        since = rows[299][0].at  # a release 300 answers ago
        assert answers_since(s, "KCSE", 2025, since) == 300
    count = _plan_of(pg_database, lambda s: answers_since(s, "KCSE", 2025, since))
    assert "ix_audit_events_series" in count and "Seq Scan on audit_events" not in count, count


def test_guardians_with_no_learner_and_idle_phone_settings_go_after_the_records_age(database):
    """A guardian row (a parent's name and phone) left with no learner, and a phone's settings after
    no contact, go once the records' age has passed with nothing to keep them; a STOP stays."""
    from registry.models import Guardian, GuardianLink, InboundMessage, PhoneSetting
    from registry.models.accounts import PinSession
    from registry.services.guardian_links import unlink_guardian

    ancient, recent = utcnow() - timedelta(days=6 * 365), utcnow() - timedelta(days=300)

    def guardian(s, phone: str, at=ancient) -> Guardian:
        row = Guardian(phone=phone, name=f"Parent {phone[-2:]}", created_at=at, updated_at=at)
        s.add(row)
        s.flush()
        return row

    def setting(s, phone: str, language: str = "sw", opted_out: bool = False, at=ancient) -> None:
        s.add(PhoneSetting(phone=phone, language=language, opted_out=opted_out, created_at=at, updated_at=at))

    with database.transaction() as s:
        learner = _learner(s)
        gone = guardian(s, "+254700000001")  # unlinked years ago (or its learner removed)
        s.add(PinSession(guardian_id=gone.id, session_id="old", verified_at=ancient))
        setting(s, gone.phone)  # a departed guardian's settings go with it
        linked = guardian(s, "+254700000002")
        s.add(GuardianLink(learner_id=learner.id, guardian_id=linked.id, created_at=ancient, updated_at=ancient))
        setting(s, linked.phone)  # a linked guardian's language is kept, however old
        unlinked_lately = guardian(s, "+254700000003")
        s.add(GuardianLink(learner_id=learner.id, guardian_id=unlinked_lately.id))
        guardian(s, "+254700000004", at=recent)  # changed within the age
        pin_lately = guardian(s, "+254700000005")
        s.add(PinSession(guardian_id=pin_lately.id, session_id="new", verified_at=recent))
        setting(s, "+254711000001")  # idle for years, no guardian: goes
        setting(s, "+254711000002", opted_out=True)  # STOP kept, its language reset
        setting(s, "+254711000003")  # unchanged, but texted lately: kept
        s.add(InboundMessage(provider_id="in-1", sender="+254711000003", text="HELP", created_at=recent,
                             updated_at=recent))
        setting(s, "+254711000004", at=recent)
    with database.transaction() as s:
        unlink_guardian(s, "ABC234", "+254700000003", by="test")  # writes the audit row that keeps it
        s.get(Guardian, unlinked_lately.id).updated_at = ancient

    with database.transaction() as s:
        assert (purge(s, timedelta(days=90)).guardian_rows, purge(s, timedelta(days=90)).phone_settings) == (0, 0)
    with database.transaction() as s:
        counts = purge(s, timedelta(days=90), timedelta(days=1827))
    assert (counts.guardian_rows, counts.phone_settings) == (1, 3)

    with database.session() as s:
        assert sorted(g.phone for g in s.scalars(select(Guardian))) == [
            "+254700000002", "+254700000003", "+254700000004", "+254700000005"]
        assert s.scalars(select(PinSession.session_id)).all() == ["new"]
        assert sorted((p.phone, p.language, p.opted_out) for p in s.scalars(select(PhoneSetting))) == [
            ("+254700000002", "sw", False),
            ("+254711000002", "en", True),
            ("+254711000003", "sw", False),
            ("+254711000004", "sw", False),
        ]
    with database.transaction() as s:  # idempotent
        again = purge(s, timedelta(days=90), timedelta(days=1827))
    assert (again.guardian_rows, again.phone_settings) == (0, 0)
