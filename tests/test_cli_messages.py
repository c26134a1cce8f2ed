"""``elimu messages --to``: any E.164 number, as the outbox holds it (results replies go abroad)."""

from __future__ import annotations

import json
import re

from registry.models import MessageKind, MessageStatus, OutboundMessage, Priority
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


def test_the_table_on_an_80_column_terminal_shows_every_number_whole(database, tmp_path, monkeypatch):
    """On an 80-column terminal the table squeezed every column alike: `+2547123…`, a number no
    one can look up; the recipient is never cut (nor wrapped), the text and reason wrap instead."""
    phones = ("+254712345678", "+447700900123", "+2348031234567")
    with database.transaction() as session:
        session.add_all([OutboundMessage(recipient=phone, kind=MessageKind.ANNOUNCEMENT, priority=Priority.BULK,
                                         status=MessageStatus.FAILED,
                                         body="KCSE 2025 results are out: dial *384*1234# to see them, or text "
                                              "KCSE INDEX NAME to 22252", failure_reason="DeliveryFailure: the "
                                              "phone was unreachable for 48 hours") for phone in phones])
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # a terminal to Rich
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "80")
    result = run_elimu(database, tmp_path, "messages")
    assert result.exit_code == 0, result.output
    shown = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)  # bold headers
    lines = shown.splitlines()
    assert max(len(line) for line in lines) <= 80, shown
    for phone in phones:
        assert sum(f" {phone} " in line for line in lines) == 1, shown
    assert shown.count(" announcement ") == 3 and shown.count(" failed ") == 3, shown  # nor kinds and statuses
