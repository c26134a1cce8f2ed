"""An operator's unlink of a phone from a learner while that phone's activation of the learner runs
(PostgreSQL, two transactions): both lock the guardian's row, and must take it before the link."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from menus.services import Purpose
from registry.models import Guardian, GuardianLink, OneTimeCode
from registry.services import accounts
from registry.services.accounts import Keys
from registry.services.guardian_links import unlink_guardian
from tests.conftest import TEST_SECRET
from tests.pg_waits import Behind
from tests.ussd.support import PHONE, World

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
KEYS = Keys.from_secret(TEST_SECRET)


def test_an_unlink_while_the_phone_activates_the_learner_waits_instead_of_deadlocking(pg_database):
    """The activation holds the guardian's row (its first statement) when the unlink starts; the
    unlink must wait for that row before it deletes the link. Deleting first, it held the link the
    activation then writes while its trigger waited for the guardian's row: a deadlock, which
    PostgreSQL ended by failing the unlink (the phone keeps a second learner, so the trigger had
    nothing to mark: the lock alone deadlocked)."""
    world = World(pg_database, TEST_SECRET)
    learner_id = world.learner()
    world.learner(upi="K7M9P2", first="John", birth_cert="87654321", assessment="K2023000789")
    with pg_database.transaction() as session:
        session.add(OneTimeCode(phone=PHONE, purpose=Purpose.ACTIVATE.value, learner_id=learner_id,
                                code_hash="used", expires_at=NOW, attempts=0, used_at=NOW, created_at=NOW,
                                updated_at=NOW))
    with pg_database.transaction() as session:
        # activate's own first step, taken here so the unlink starts while the activation holds it
        session.execute(select(Guardian.id).where(Guardian.phone == PHONE).with_for_update())
        unlinking = Behind(pg_database, lambda other: unlink_guardian(other, "A1B2C3", PHONE, by="test"))
        assert accounts.activate(session, KEYS, PHONE, learner_id, "4826", "s1", NOW)
    unlinked = unlinking.result()

    assert unlinked.verified_at is not None, "the unlink ran before the activation it waited for committed"
    assert unlinked.phones_left == 0
    with pg_database.session() as session:
        links = session.scalars(select(GuardianLink).join(Guardian).where(Guardian.phone == PHONE)).all()
        assert [link.learner.upi for link in links] == ["K7M9P2"]
        guardian = session.scalars(select(Guardian).where(Guardian.phone == PHONE)).one()
        assert guardian.unlinked_at is None and guardian.activated_at is not None
