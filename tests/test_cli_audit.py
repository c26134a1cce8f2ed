"""``elimu audit``'s times: ISO 8601 in UTC with the zone, on SQLite as on PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime

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
