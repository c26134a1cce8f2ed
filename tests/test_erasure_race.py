"""An erasure of a phone's data while a STOP from that phone commits (PostgreSQL, two transactions)."""

from __future__ import annotations

import pytest

from registry.models import PhoneSetting
from registry.services.sms_replies import set_opted_out
from registry.services.subject_rights import erase
from tests.pg_waits import Behind

pytestmark = pytest.mark.postgres
PHONE = "+254712345678"


def test_a_stop_that_commits_while_the_phone_is_erased_keeps_working(pg_database):
    """The erasure read the phone's settings (language chosen, not opted out) and drops them; a STOP
    updating that row commits first: the erasure must keep the opt-out (announcements stay off),
    not delete the row the STOP just set."""
    with pg_database.transaction() as session:
        session.add(PhoneSetting(phone=PHONE, language="sw", opted_out=False))
    with pg_database.transaction() as session:
        set_opted_out(session, PHONE, True)
        erasing = Behind(pg_database, lambda other: erase(other, PHONE))
    erasing.result()
    with pg_database.session() as session:
        setting = session.get(PhoneSetting, PHONE)
        assert setting is not None and setting.opted_out, "the STOP was erased"
        assert setting.language == "en"
