"""``elimu messages --to``: any E.164 number, as the outbox holds it (results replies go abroad)."""

from __future__ import annotations

import json

from registry.models import MessageKind, OutboundMessage, Priority
from tests.cli_support import run_elimu


def test_messages_to_a_phone_abroad_are_found(database, tmp_path):
    with database.transaction() as session:
        session.add_all([OutboundMessage(recipient=phone, kind=MessageKind.REPLY, body="KCSE 2025 ...",
                                         priority=Priority.REPLY) for phone in ("+447700900123", "+254712345678")])
    result = run_elimu(database, tmp_path, "messages", "--to", "+44 7700 900123", "--json")
    assert result.exit_code == 0, result.output
    assert [row["to"] for row in json.loads(result.stdout)] == ["+447700900123"]
    kenyan = run_elimu(database, tmp_path, "messages", "--to", "0712 345 678", "--json")
    assert [row["to"] for row in json.loads(kenyan.stdout)] == ["+254712345678"]
    bad = run_elimu(database, tmp_path, "messages", "--to", "020 2222222")
    assert bad.exit_code == 2 and "Invalid value for --to: not a mobile number" in bad.stderr
