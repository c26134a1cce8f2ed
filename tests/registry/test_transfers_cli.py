"""``elimu registry`` transfer commands as a school administrator runs them: one line, exit 0 or 1."""

from __future__ import annotations

import json

import pytest

from ..cli_support import run_elimu
from .support import learner, write_learners


@pytest.fixture
def jane(database, tmp_path):
    rows = [learner(upi="KE77XZ", first_name="Jane", last_name="Wanjiru", guardian_phone="0722111222"),
            learner(upi="KE88YY", birth_certificate_no="B2", institution_code="KS5L", institution_name="Kisumu Lakeside",
                    county_code="042", guardian_phone="0733200300")]  # fmt: skip
    assert run_elimu(database, tmp_path, "registry", "import-learners", str(write_learners(tmp_path / "l.csv", rows))).exit_code == 0
    return database


def _run(database, tmp_path, *args):
    done = run_elimu(database, tmp_path, "registry", *args)
    return done.exit_code, done.stdout, done.stderr


def test_cancelling_a_request_then_a_release(jane, tmp_path):
    assert _run(jane, tmp_path, "request-transfer", "KE77XZ", "--institution", "KS5L")[0] == 0
    assert _run(jane, tmp_path, "cancel-transfer", "ke77xz", "--institution", "ks5l") == (
        0, "KE77XZ (Jane W.): transfer cancelled, enrolled at NB7K; no SMS notice (the guardians were not told of the request)\n", "")
    assert _run(jane, tmp_path, "release", "KE77XZ")[0] == 0
    assert _run(jane, tmp_path, "cancel-transfer", "KE77XZ") == (
        0, "KE77XZ (Jane W.): transfer cancelled, enrolled at NB7K; SMS notice queued to 1 phone(s)\n", "")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("cancel-transfer", "KE77XZ"), "KE77XZ has no transfer in progress: enrolled at NB7K"),
        (("cancel-transfer", "NOSUCH"), "no learner has UPI NOSUCH"),
        (("cancel-transfer", "KE77XZ", "--institution", "NOPE"), "KE77XZ has no transfer in progress: enrolled at NB7K"),
        (("release", "KE88YY", "--institution", "NB7K"), "KE88YY is enrolled at KS5L, not NB7K: only KS5L can release"),
    ],
)
def test_a_cancel_refused_says_why_in_one_line_and_exits_1(jane, tmp_path, args, reason):
    assert _run(jane, tmp_path, *args) == (1, "", f"Error: refused: {reason}\n")


def test_the_admit_refusal_for_the_releasing_school_names_the_way_back(jane, tmp_path):
    _run(jane, tmp_path, "release", "KE77XZ")
    code, _, err = _run(jane, tmp_path, "admit", "KE77XZ", "--institution", "NB7K")
    assert code == 1 and "cannot admit its own learner back; to keep the learner, cancel the transfer" in err


def test_transfers_lists_what_is_in_progress_for_a_school_as_a_table_or_json(jane, tmp_path):
    """A learner released and never admitted, or a request never released, stays visible to the schools."""
    assert _run(jane, tmp_path, "transfers") == (0, "no transfers in progress\n", "")
    _run(jane, tmp_path, "request-transfer", "KE77XZ", "--institution", "KS5L")
    _run(jane, tmp_path, "release", "KE88YY")
    code, out, _ = _run(jane, tmp_path, "transfers")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["upi", "learner", "state", "from", "to", "since"]
    assert [line.split()[:6] for line in lines[1:]] == [["KE77XZ", "Jane", "W.", "requested", "NB7K", "KS5L"],
                                                        ["KE88YY", "Jane", "K.", "released", "KS5L", "any"]]  # fmt: skip
    records = json.loads(_run(jane, tmp_path, "transfers", "--institution", "nb7k", "--json")[1])
    assert [(r["upi"], r["learner"], r["state"], r["from"], r["to"]) for r in records] == [
        ("KE77XZ", "Jane W.", "requested", "NB7K", "KS5L")]
    assert records[0]["since"].endswith("+00:00")
    _run(jane, tmp_path, "cancel-transfer", "KE77XZ")
    assert json.loads(_run(jane, tmp_path, "transfers", "--institution", "NB7K", "--json")[1]) == []
    assert _run(jane, tmp_path, "transfers", "--institution", "NOPE") == (1, "", "Error: refused: no institution has code NOPE\n")
