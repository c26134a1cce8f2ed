"""``elimu demo seed`` and the two-command path ``elimu db upgrade`` + ``elimu demo seed --if-empty``."""

from __future__ import annotations

from tests.cli_support import run_elimu


def test_seed_if_empty_loads_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'elimu.sqlite3'}"
    assert run_elimu(url, tmp_path, "db", "upgrade").exit_code == 0
    first = run_elimu(url, tmp_path, "demo", "seed", "--if-empty")
    assert first.exit_code == 0, first.stderr
    assert first.stdout.startswith("50 learners in the registry; demo rows of learner and guardian: added 60, ")
    assert "+254712345678  Mary Wanjiku Kamau (mother)" in first.stdout
    second = run_elimu(url, tmp_path, "demo", "seed", "--if-empty")
    assert (second.exit_code, second.stdout) == (0, "the registry already has 50 learners: demo data not loaded\n")
    forced = run_elimu(url, tmp_path, "demo", "seed")
    assert forced.exit_code == 0 and "guardian: added 0, updated 0, unchanged 60" in forced.stdout


def test_seed_on_postgresql(pg_database, tmp_path):
    done = run_elimu(pg_database, tmp_path, "demo", "seed", "--if-empty")
    assert done.exit_code == 0, done.stderr
    assert "demo results: added 16" in done.stdout
