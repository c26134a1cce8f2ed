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
