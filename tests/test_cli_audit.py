"""``elimu audit``: its times (ISO 8601 in UTC with the zone, on SQLite as on PostgreSQL), and the
words of every command's refusal of a phone number."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from registry.identifiers import MSISDN_FORMS
from registry.services.audit import record_disclosure
from tests.cli_support import run_elimu


def test_audit_times_carry_their_zone_on_every_database(database, tmp_path):
    """SQLite hands datetimes back without a zone: the rows' ``at`` must still be UTC and say so,
    as on PostgreSQL and as every other command's JSON (a script reading both would take a zoneless
    time for local time)."""
    with database.transaction() as session:
        record_disclosure(session, phone="+254712345678", learner_id=None, action="status_shown", channel="ussd",
                          reference="sess-1")
    result = run_elimu(database, tmp_path, "audit", "--phone", "0712345678", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    at = datetime.fromisoformat(row["at"])
    assert at.utcoffset() is not None and at.utcoffset().total_seconds() == 0, row["at"]
    assert abs((datetime.now(UTC) - at).total_seconds()) < 3600
    table = run_elimu(database, tmp_path, "audit", "--phone", "0712345678")
    assert table.stdout.splitlines()[1].startswith(f"{row['at']}  +254712345678  -")


def test_an_unknown_learner_is_refused_not_answered_with_no_disclosures(database, tmp_path):
    """An access request about a mistyped UPI must not read as 'nothing was disclosed'."""
    result = run_elimu(database, tmp_path, "audit", "--learner", "nosuch", "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == ("Error: no learner has UPI 'NOSUCH': check it (a candidate's results sent are found by "
                             "--index NUMBER too)\n")


_ABROAD = "or another country's in E.164 (+ and its country code)"


@pytest.mark.parametrize(
    ("args", "exit_code", "error"),
    [
        (("audit", "--phone", "hello"),
         2, f"Invalid value for --phone: not a phone number (it has no digits); {MSISDN_FORMS}, {_ABROAD}"),
        (("audit", "--phone", "+"), 2, f"Invalid value for --phone: not a phone number (it has no digits); {MSISDN_FORMS}, {_ABROAD}"),
        (("audit", "--phone", "0" * 40), 2, f"Invalid value for --phone: too many digits for one phone number; {MSISDN_FORMS}, {_ABROAD}"),
        (("messages", "--to", "+2"), 2, f"Invalid value for --to: too few digits; {MSISDN_FORMS}, {_ABROAD}"),
        (("privacy", "export", "07123"),
         2, f"Invalid value for MSISDN: not a valid Kenyan number: too few digits; {MSISDN_FORMS}, {_ABROAD}"),
        (("registry", "unlink-guardian", "ZQ6NFN", "n/a"), 1, f"refused: not a phone number (it has no digits); {MSISDN_FORMS}"),
        (("simulate", "--phone", "000"), 2, f"Invalid value for --phone: too few digits after the international prefix; {MSISDN_FORMS}"),
    ],
)
def test_every_command_refuses_a_bad_phone_in_our_own_words(sqlite_database, tmp_path, args, exit_code, error):
    """These quoted phonenumbers ("not a phone number: (1) The string supplied did not seem to be a
    phone number."): the operator is told what is wrong and which forms are taken, in one line."""
    result = run_elimu(sqlite_database, tmp_path, *args)
    assert result.exit_code == exit_code and result.stdout == ""
    assert result.stderr.splitlines()[-1] == f"Error: {error}"


def test_refused_results_requests_and_pins_chosen_are_listed_by_index_and_phone(database, tmp_path):
    """The rows the results and PIN limits count are where an operator looks for them: ``--index``
    lists the results sent of a number and the requests refused at it (a wrong name, no name, a
    number nobody holds), not another number's; ``--phone`` lists those and the PINs chosen and
    refused past the day's; ``--learner`` only what was disclosed of the learner."""
    from datetime import timedelta

    from registry.services.accounts import PIN_CHOICES_PER_DAY, judge_chosen_pin
    from registry.services.sms_commands import parse
    from registry.services.sms_replies import OpenGate, respond
    from tests.sms.support import add_result
    from tests.test_audit_retention import _learner

    phone, other = "+254712345678", "+254722000111"
    with database.transaction() as s:
        learner = _learner(s)
        add_result(s, index="36611030002", name="Jane Wambui Wanjiku", learner=learner)
        add_result(s, index="36611030003", name="Brian Otieno")
        for message_id, sender, sms in ((1, phone, "KCSE 36611030002 Akinyi"), (2, phone, "KCSE 36611030002"),
                                        (3, phone, "KCSE 36611030002 Wanjiku"), (4, other, "KCSE 36611030003 Akinyi"),
                                        (5, phone, "KCSE 2025 36611030009 Akinyi")):
            respond(s, message_id=message_id, phone=sender, command=parse(sms), stored_language=None,
                    gate=OpenGate(), ussd_code="*384*1234#")
    now = datetime.now(UTC) - timedelta(minutes=1)
    for pin in [f"{day:02d}03" for day in range(10, 11 + PIN_CHOICES_PER_DAY)]:
        with database.transaction() as s:
            judge_chosen_pin(s, phone, pin, now)

    def rows(*args: str) -> list[tuple[str, str, str | None]]:
        result = run_elimu(database, tmp_path, "audit", *args, "--json")
        assert result.exit_code == 0, result.output
        return [(r["action"], r["reference"], r["detail"]) for r in json.loads(result.stdout)]

    at_index = sorted(rows("--index", "36611030002"))
    assert at_index == [("results_miss", "1", "KCSE 2025 36611030002"),
                        ("results_refused", "2", "KCSE 2025 36611030002"),
                        ("results_replied", "3", "KCSE 2025 36611030002")]
    assert rows("--index", "36611030009") == [("results_miss", "5", "KCSE 2025 36611030009")]
    by_phone = rows("--phone", "0712345678")
    assert sorted(r for r in by_phone if r[0].startswith("results_")) == sorted(
        [*at_index, ("results_miss", "5", "KCSE 2025 36611030009")])
    assert [r[0] for r in by_phone].count("pin_chosen") == PIN_CHOICES_PER_DAY
    assert [r[0] for r in by_phone].count("pin_choice_limit") == 1
    assert rows("--learner", "ABC234") == [("results_replied", "3", "KCSE 2025 36611030002")]
    assert run_elimu(database, tmp_path, "audit", "--index", "36611030004").stdout == "nothing recorded\n"
    helped = " ".join(run_elimu(database, tmp_path, "audit", "--help").stdout.split())
    for action in ("results_miss", "results_refused", "pin_chosen", "pin_choice_limit"):
        assert f"`{action}`" in helped, action
