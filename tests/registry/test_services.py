"""Learner lookups and result lookups/release (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from registry.services.learners import (
    find_guardian,
    find_learner,
    guardians_of,
    learners_for_phone,
)
from registry.services.results import UnknownSeries, find_result, release_results

from .support import learner, run_learners, run_results, write_learners, write_results


@pytest.fixture
def registry(database, tmp_path):
    rows = [
        learner(upi="KE77XZ", first_name="Jane", birth_certificate_no="5102347", assessment_no="A304", guardian_phone="0712345678"),
        learner(upi="KE77XZ", first_name="Jane", birth_certificate_no="5102347", assessment_no="A304", guardian_phone="0722111222", guardian_relationship="self"),
        learner(upi="KE88YY", first_name="Brian", birth_certificate_no="3920418", guardian_phone="0712345678"),
    ]  # fmt: skip
    run_learners(database, write_learners(tmp_path / "l.csv", rows))
    results = [
        {"exam": "KCSE", "year": "2024", "index_number": "19301012014", "upi": "KE88YY", "candidate_name": "Brian Kamau",
         "mean_grade": "D+", "points": "28", "subjects": ""},
        {"exam": "KCSE", "year": "2025", "index_number": "19301012014", "upi": "KE88YY", "candidate_name": "Brian Kamau",
         "mean_grade": "C+", "points": "49", "subjects": ""},
    ]  # fmt: skip
    run_results(database, write_results(tmp_path / "r.csv", results))
    return database


def test_find_learner_by_each_identifier(registry):
    with registry.session() as session:
        assert find_learner(session, upi=" ke77xz ").first_name == "Jane"
        assert find_learner(session, birth_certificate_no="5102347").upi == "KE77XZ"
        assert find_learner(session, assessment_no="a304").upi == "KE77XZ"
        assert find_learner(session, index_number="19301012014").upi == "KE88YY"
        assert find_learner(session, upi="NOSUCH") is None
        with pytest.raises(ValueError):
            find_learner(session, upi="KE77XZ", birth_certificate_no="5102347")


def test_phones_and_links(registry):
    with registry.session() as session:
        assert [lrn.upi for lrn in learners_for_phone(session, "+254712345678")] == ["KE88YY", "KE77XZ"]
        jane = find_learner(session, upi="KE77XZ")
        assert [g.phone for g in guardians_of(session, jane)] == ["+254712345678", "+254722111222"]
        linked = {lrn.id for lrn in learners_for_phone(session, "+254722111222")}
        assert jane.id in linked
        assert find_learner(session, upi="KE88YY").id not in linked
        assert find_guardian(session, "+254712345678").name == "Mary Kamau"
        assert find_guardian(session, "+254700000000") is None


def test_results_answer_the_latest_released_year(registry):
    with registry.session() as session:
        latest = find_result(session, "kcse", "19301012014")
        assert (latest.series.year, latest.released) == (2025, False)  # none released: the latest, flagged
        assert find_result(session, "KCSE", "19301012099") is None
        assert find_result(session, "KCPE", "19301012014") is None
    with registry.transaction() as session:
        series, count, already = release_results(session, "KCSE", 2024)
        assert (series.year, count, already) == (2024, 1, False)
    with registry.session() as session:
        only_2024 = find_result(session, "KCSE", "19301012014")
        assert (only_2024.series.year, only_2024.mean_grade, only_2024.released) == (2024, "D+", True)
        assert find_result(session, "KCSE", "19301012014", year=2025).mean_grade == "C+"
        assert find_result(session, "KCSE", "19301012014", year=2023) is None
    with registry.transaction() as session:
        release_results(session, "kcse", 2025)
    with registry.session() as session:
        assert find_result(session, "KCSE", "19301012014").series.year == 2025


def test_release_is_idempotent_and_refuses_unknown_series(registry):
    with registry.transaction() as session:
        first, _, _ = release_results(session, "KCSE", 2025)
        stamp = first.released_at
    with registry.transaction() as session:
        again, count, already = release_results(session, "KCSE", 2025)
        assert already and count == 1
        assert again.released_at.replace(tzinfo=None) == stamp.replace(tzinfo=None)  # SQLite drops the zone
    with registry.transaction() as session, pytest.raises(UnknownSeries, match="no KJSEA 2025 results"):
        release_results(session, "KJSEA", 2025)
