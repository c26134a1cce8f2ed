"""An import that moves a learner while a school requests the same learner's transfer (PostgreSQL,
two transactions at once)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from registry.importer.learners import LearnerWriter
from registry.models import Learner, Transfer
from registry.services.transfers import TransferRefused, request_transfer
from tests.pg_waits import wait_until_blocked

from .support import learner, run_learners, write_learners

pytestmark = pytest.mark.postgres
KISUMU = {"institution_code": "KS5L", "institution_name": "Kisumu Lakeside", "county_code": "042"}
MOMBASA = {"institution_code": "MS3A", "institution_name": "Mombasa Academy", "county_code": "001"}


def test_a_transfer_requested_while_an_import_moves_the_learner_leaves_them_consistent(pg_database, tmp_path,
                                                                                      monkeypatch):
    """The import has looked for transfers in progress (none) and is about to move the learner to
    another school when a third school's request commits: the learner must not end up at the
    import's school under a transfer that leaves the school it was at before."""
    run_learners(pg_database, write_learners(tmp_path / "a.csv", [
        learner(upi="KE1"),
        learner(upi="KE2", birth_certificate_no="B2", guardian_phone="0722000002", **KISUMU),
        learner(upi="KE3", birth_certificate_no="B3", guardian_phone="0733000003", **MOMBASA),
    ]))
    real = LearnerWriter._in_transfer
    looked, go, done = threading.Event(), threading.Event(), threading.Event()

    def looked_then_wait(self, bulk, learners):
        found = real(self, bulk, learners)
        if learners:
            looked.set()
            assert go.wait(10)
        return found

    monkeypatch.setattr(LearnerWriter, "_in_transfer", looked_then_wait)
    outcome: list[object] = []

    def requesting() -> None:
        try:
            with pg_database.transaction() as session:
                request_transfer(session, "KE1", "MS3A")
            outcome.append("requested")
        except TransferRefused as exc:
            outcome.append(exc.reason)
        finally:
            done.set()

    importing = threading.Thread(target=run_learners, args=(
        pg_database, write_learners(tmp_path / "b.csv", [learner(upi="KE1", grade="Grade 7", **KISUMU)])))
    importing.start()
    assert looked.wait(10)
    request = threading.Thread(target=requesting)
    request.start()
    wait_until_blocked(pg_database, done)
    waited = not done.is_set()  # the import holds the learner's row: a request that waits cannot have ended
    go.set()
    importing.join(60)
    request.join(60)
    assert not importing.is_alive() and not request.is_alive()
    assert outcome == ["requested"]
    with pg_database.session() as session:
        moved = session.scalars(select(Learner).where(Learner.upi == "KE1")).one()
        transfer = session.scalars(select(Transfer).where(Transfer.learner_id == moved.id)).one()
        assert transfer.from_institution_id == moved.institution_id, "the transfer leaves a school the learner is not at"
        assert moved.grade == "Grade 7"
    assert waited, "the transfer request ended while the import was inside its window"
