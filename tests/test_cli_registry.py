"""``elimu registry``: imports (counts, rejected lines, exit codes 0/1/2) and transfer moves."""

from __future__ import annotations

from tests.cli_support import run_elimu
from tests.registry.support import learner, write_learners, write_results


def test_import_learners_prints_counts_and_exits_0_then_1_for_rejects(database, tmp_path):
    good = write_learners(tmp_path / "good.csv", [learner(upi="KE1"), learner(upi="KE2", birth_certificate_no="X2")])
    done = run_elimu(database, tmp_path, "registry", "import-learners", str(good))
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith("added 2, updated 0, unchanged 0, rejected 0 (2 rows in ")
    assert done.stderr == ""  # no progress bar when stderr is not a terminal

    again = run_elimu(database, tmp_path, "registry", "import-learners", str(good))
    assert again.exit_code == 0 and again.stdout.startswith("added 0, updated 0, unchanged 2, rejected 0")

    bad = write_learners(tmp_path / "bad.csv", [learner(upi="KE3", birth_certificate_no="X3"), learner(upi="KE4", gender="Q"),
                                                learner(upi="KE5", guardian_phone="07123")])  # fmt: skip
    done = run_elimu(database, tmp_path, "registry", "import-learners", str(bad))
    assert done.exit_code == 1
    assert done.stdout.startswith("added 1, updated 0, unchanged 0, rejected 2")
    assert done.stderr.splitlines() == [
        "line 3: gender must be M or F, not 'Q'",
        "line 4: guardian_phone '07123': not a valid Kenyan number (wrong length or prefix)",
    ]


def test_unreadable_files_exit_2_with_one_line(database, tmp_path):
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"upi,first_name\nKE1,J\xe9r\xf4me\n")
    missing = write_results(tmp_path / "results.csv", [])
    cases = [
        ("import-learners", latin1, "line 2: not UTF-8 text"),
        ("import-learners", tmp_path / "absent.csv", "no such file"),
        ("import-learners", missing, "header lacks column(s): first_name, middle_name"),
    ]
    for command, path, reason in cases:
        done = run_elimu(database, tmp_path, "registry", command, str(path))
        assert done.exit_code == 2, (command, path, done.stdout, done.stderr)
        assert done.stdout == "" and len(done.stderr.splitlines()) == 1 and reason in done.stderr


def test_import_results_then_release(database, tmp_path):
    results = write_results(tmp_path / "results.csv", [
        {"exam": "KCSE", "year": "2025", "index_number": "03611030002", "upi": "", "candidate_name": "Jane Kamau",
         "mean_grade": "A-", "points": "78", "subjects": "ENG:B+;KIS:A-"},
        {"exam": "KCSE", "year": "2025", "index_number": "0361103000", "upi": "", "candidate_name": "Short Index",
         "mean_grade": "B", "points": "", "subjects": ""},
    ])  # fmt: skip
    done = run_elimu(database, tmp_path, "registry", "import-results", str(results))
    assert done.exit_code == 1
    assert done.stdout.startswith("added 1, updated 0, unchanged 0, rejected 1")
    assert done.stderr == "line 3: KCSE index number must be 11 digits, not '0361103000'\n"

    done = run_elimu(database, tmp_path, "results", "release", "kcse", "2025")
    assert (done.exit_code, done.stdout) == (0, "KCSE 2025 released: 1 results now answer\n")
    done = run_elimu(database, tmp_path, "results", "release", "KCSE", "2025")
    assert done.exit_code == 0 and "already released on" in done.stdout
    done = run_elimu(database, tmp_path, "results", "release", "KJSEA", "2025")
    assert done.exit_code == 1 and done.stderr == "Error: no KJSEA 2025 results have been imported\n"
    done = run_elimu(database, tmp_path, "results", "release", "GCSE", "2025")
    assert done.exit_code == 2 and "exam must be one of" in done.stderr


def test_transfer_moves_and_refusals(database, tmp_path):
    rows = [learner(upi="KE77XZ", first_name="Jane", last_name="Wanjiru"),
            learner(upi="KE88YY", birth_certificate_no="B2", institution_code="KS5L", institution_name="Kisumu Lakeside",
                    county_code="042", guardian_phone="0722111222")]  # fmt: skip
    run_elimu(database, tmp_path, "registry", "import-learners", str(write_learners(tmp_path / "l.csv", rows)))

    done = run_elimu(database, tmp_path, "registry", "admit", "KE77XZ", "--institution", "KS5L")
    assert done.exit_code == 1
    assert done.stderr == "Error: refused: KE77XZ is enrolled at NB7K and not released: that school releases first\n"

    done = run_elimu(database, tmp_path, "registry", "request-transfer", "ke77xz", "--institution", "ks5l")
    assert done.exit_code == 0 and "transfer from NB7K to KS5L requested" in done.stdout
    done = run_elimu(database, tmp_path, "registry", "release", "KE77XZ")
    assert (done.exit_code, done.stdout) == (0, "KE77XZ (Jane W.): released; SMS notice queued to 1 phone(s)\n")
    done = run_elimu(database, tmp_path, "registry", "admit", "KE77XZ", "--institution", "NB7K")
    assert done.exit_code == 1 and "only that school can admit" in done.stderr
    done = run_elimu(database, tmp_path, "registry", "admit", "KE77XZ", "--institution", "KS5L")
    assert (done.exit_code, done.stdout) == (0, "KE77XZ (Jane W.): admitted; SMS notice queued to 1 phone(s)\n")

    done = run_elimu(database, tmp_path, "registry", "admit", "KE77XZ")
    assert done.exit_code == 2 and "--institution" in done.stderr


def test_an_unmigrated_database_is_one_line_not_a_traceback(tmp_path):
    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    path = write_learners(tmp_path / "l.csv", [learner(upi="KE1")])
    for args in (("registry", "import-learners", str(path)), ("registry", "release", "KE1"),
                 ("results", "release", "KCSE", "2025"), ("demo", "seed")):  # fmt: skip
        done = run_elimu(empty, tmp_path, *args)
        assert done.exit_code == 3, args
        assert done.stderr.startswith("Error: database: no such table") and "elimu db upgrade" in done.stderr
        assert len(done.stderr.splitlines()) == 1


def test_on_a_terminal_a_progress_bar_runs_and_rejections_still_print(database, tmp_path, monkeypatch):
    import gateway.cli.registry as registry_cli

    monkeypatch.setattr(registry_cli, "_stderr_is_terminal", lambda: True)
    rows = [learner(upi=f"KE{i}", birth_certificate_no=f"B{i}", guardian_phone=f"07220000{i:02d}") for i in range(30)]
    rows[7]["gender"] = "Q"
    done = run_elimu(database, tmp_path, "registry", "import-learners", str(write_learners(tmp_path / "l.csv", rows)))
    assert done.exit_code == 1
    assert "line 9: gender must be M or F, not 'Q'" in done.stderr
    assert done.stdout.startswith("added 29, updated 0, unchanged 0, rejected 1")
