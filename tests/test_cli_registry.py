"""``elimu registry``: imports (counts, rejected lines, exit codes 0/1/2) and transfer moves."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from registry.importer import batches
from registry.importer.results import ResultWriter
from registry.models import ExamResult, ExamSeries
from tests.cli_support import SECRET, run_elimu
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
        "line 4: guardian_phone '07123': not a valid Kenyan number: too few digits; a Kenyan mobile number "
        "is 07... or 01... (10 digits), or +2547... or +2541...",
    ]


def test_unreadable_files_exit_2_with_one_line(database, tmp_path):
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"upi,first_name,Not\xe9s\nKE1,J\xe9r\xf4me\n")
    missing = write_results(tmp_path / "results.csv", [])
    cases = [
        ("import-learners", latin1, "line 1: not UTF-8 text (byte 0xe9)"),
        ("import-learners", tmp_path / "absent.csv", "no such file"),
        ("import-learners", missing, "header lacks column(s): first_name, middle_name"),
    ]
    for command, path, reason in cases:
        done = run_elimu(database, tmp_path, "registry", command, str(path))
        assert done.exit_code == 2, (command, path, done.stdout, done.stderr)
        assert done.stdout == "" and len(done.stderr.splitlines()) == 1 and reason in done.stderr


def _results(count: int, start: int = 0) -> list[dict[str, str]]:
    return [{"exam": "KCSE", "year": "2025", "index_number": f"{36611000000 + i:011d}", "upi": "",
             "candidate_name": f"Candidate {i}", "mean_grade": "B", "points": "", "subjects": ""}
            for i in range(start, start + count)]  # fmt: skip


def test_a_damaged_row_after_written_batches_is_a_rejected_line_not_exit_2(database, tmp_path):
    """1,200 good rows (a batch of 1000 is written), a field over 200,000 characters, 5 good rows."""
    rows = [*_results(1200), {**_results(1, 5000)[0], "candidate_name": "x" * 200_001}, *_results(5, 2000)]
    path = write_results(tmp_path / "big.csv", rows)
    done = run_elimu(database, tmp_path, "registry", "import-results", str(path))
    assert done.exit_code == 1, done.stderr
    assert done.stdout.startswith("added 1205, updated 0, unchanged 0, rejected 1 (1206 rows in ")
    assert done.stderr == "line 1202: a field is longer than 131072 characters\n"


def test_an_import_stopped_by_the_database_prints_what_it_wrote_and_where_it_stopped(database, tmp_path, monkeypatch):
    """The server goes away after the first batch (lines 2-1001): the counts of that batch and the
    line to look from are printed with the error, not the error alone; importing again finishes."""
    rows = _results(2500)
    rows[5]["mean_grade"] = "Q"  # line 7
    path = write_results(tmp_path / "r.csv", rows)
    real = ResultWriter.write

    def write(self, session, batch):
        if batch[-1].line >= 1002:
            raise OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))
        return real(self, session, batch)

    monkeypatch.setattr(ResultWriter, "write", write)
    done = run_elimu(database, tmp_path, "registry", "import-results", str(path))
    assert done.exit_code == 3
    assert re.fullmatch(
        r"added 999, updated 0, unchanged 0, rejected 1 \(1000 rows in [0-9.]+ s\); the import stopped at line 1002: "
        r"that line and those after it were not all imported; import the file again once the error is put right "
        r"\(rows already imported count as unchanged\)\n", done.stdout)  # fmt: skip
    assert done.stderr.splitlines() == [
        "line 7: mean_grade 'Q' is not a KCSE grade (A A- B+ B B- C+ C C- D+ D D- E X Y W P)",
        "Error: database: server closed the connection unexpectedly",
    ]
    monkeypatch.setattr(ResultWriter, "write", real)
    again = run_elimu(database, tmp_path, "registry", "import-results", str(path))
    assert again.exit_code == 1 and again.stdout.startswith("added 1500, updated 0, unchanged 999, rejected 1 (")


def test_a_quote_never_closed_is_named_and_the_lines_it_swallowed_are_counted_out(database, tmp_path):
    path = write_results(tmp_path / "quote.csv", _results(1200))
    with path.open("a", encoding="utf-8", newline="") as fh:
        fh.write('KCSE,2025,36611099998,,"Unclosed name,B,,\r\n')  # line 1202
        fh.writelines(f"KCSE,2025,{36611002000 + i:011d},,Later {i},B,,\r\n" for i in range(4))  # 1203-1206
    done = run_elimu(database, tmp_path, "registry", "import-results", str(path))
    assert done.exit_code == 1
    assert done.stdout.startswith("added 1200, updated 0, unchanged 0, rejected 1 (1201 rows in ")
    assert done.stdout.endswith(" s); lines 1203-1206 were not imported: see line 1202\n")
    assert done.stderr == (
        "line 1202: a quote opened on line 1202 is never closed: lines 1202-1206, to the end of the file, "
        "were read as this one row and not imported\n"
    )


def test_unknown_upis_and_institutions_named_twice(database, tmp_path):
    rows = [learner(upi="KE1"), learner(upi="KE2", birth_certificate_no="X2", institution_name="Kilimani P")]
    path = write_learners(tmp_path / "l.csv", rows)
    done = run_elimu(database, tmp_path, "registry", "import-learners", str(path))
    assert done.exit_code == 0 and done.stdout.startswith("added 2, updated 0, unchanged 0, rejected 0")
    assert done.stderr == (
        "l.csv: line 3: institution_name 'Kilimani P' differs from 'Kilimani Primary' on line 2 "
        "(same institution_code NB7K); the import keeps line 2's\n"
    )
    results = [{**_results(1)[0], "upi": "KE1"}, {**_results(1, 1)[0], "upi": "NOSUCH"}]
    path = write_results(tmp_path / "r.csv", results)
    done = run_elimu(database, tmp_path, "registry", "import-results", str(path))
    assert done.exit_code == 1 and done.stdout.startswith("added 1, updated 0, unchanged 0, rejected 1")
    assert done.stderr == "line 3: unknown UPI NOSUCH (import learners first)\n"


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


def test_a_series_whose_rows_were_all_rejected_is_not_released(database, tmp_path):
    """Released empty, it would publish the results imported into it later the moment they land."""
    results = write_results(tmp_path / "results.csv", [
        {"exam": "KCSE", "year": "2024", "index_number": "03611030002", "upi": "NOSUCH", "candidate_name": "Jane Kamau",
         "mean_grade": "A-", "points": "78", "subjects": "ENG:B+;KIS:A-"},
    ])  # fmt: skip
    assert run_elimu(database, tmp_path, "registry", "import-results", str(results)).exit_code == 1
    done = run_elimu(database, tmp_path, "results", "release", "KCSE", "2024")
    assert done.exit_code == 1
    assert done.stderr == "Error: no KCSE 2024 results have been imported (every row was rejected)\n"
    with database.session() as session:
        assert session.scalars(select(ExamSeries)).one().released_at is None


def test_results_status_counts_each_series_and_says_whether_it_is_released(database, tmp_path):
    assert run_elimu(database, tmp_path, "results", "status").stdout == "no results have been imported\n"
    run_elimu(database, tmp_path, "registry", "import-learners", str(write_learners(tmp_path / "l.csv", [learner(upi="KE1")])))
    row = {"exam": "KCSE", "year": "2025", "index_number": "03611030002", "upi": "KE1", "candidate_name": "Jane Kamau",
           "mean_grade": "A-", "points": "78", "subjects": "ENG:B+"}  # fmt: skip
    results = write_results(tmp_path / "r.csv", [row, {**row, "index_number": "03611030003", "upi": ""},
                                                 {**row, "exam": "KJSEA", "index_number": "3047190112", "upi": "",
                                                  "mean_grade": "EE1", "points": "70", "subjects": ""}])  # fmt: skip
    assert run_elimu(database, tmp_path, "registry", "import-results", str(results)).exit_code == 0
    assert run_elimu(database, tmp_path, "results", "release", "KCSE", "2025").exit_code == 0

    done = run_elimu(database, tmp_path, "results", "status")
    assert done.exit_code == 0
    lines = done.stdout.splitlines()
    assert lines[0] == "exam   year   results    linked  released"
    assert re.fullmatch(r"KCSE   2025         2         1  \d{4}-\d\d-\d\d \d\d:\d\d UTC", lines[1])
    assert lines[2:] == ["KJSEA  2025         1         0  not released"]
    records = json.loads(run_elimu(database, tmp_path, "results", "status", "--json").stdout)
    assert records[1] == {"exam": "KJSEA", "year": 2025, "results": 1, "linked": 0, "released_at": None}
    assert records[0]["released_at"].endswith("+00:00")


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


def test_a_transfer_notice_to_an_unverified_phone_names_the_configured_ussd_code(database, tmp_path, monkeypatch):
    """The imported guardian has not verified the learner on USSD: the notice carries no learner
    data, only the service code this deployment is configured with (ELIMU_USSD_CODE)."""
    from registry.models import OutboundMessage

    monkeypatch.setenv("ELIMU_USSD_CODE", "*555*1#")
    rows = [learner(upi="KE77XZ", first_name="Jane", last_name="Wanjiru", guardian_phone="0722111222")]
    run_elimu(database, tmp_path, "registry", "import-learners", str(write_learners(tmp_path / "l.csv", rows)))
    assert run_elimu(database, tmp_path, "registry", "release", "KE77XZ").exit_code == 0
    with database.session() as session:
        [body] = [m.body for m in session.query(OutboundMessage).filter_by(recipient="+254722111222")]
    assert "Dial *555*1# to check" in body and "Jane" not in body and "Kilimani" not in body


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


def test_ctrl_c_during_an_import_prints_what_it_wrote_and_exits_130(database, tmp_path, monkeypatch):
    """Ctrl-C while line 1502 is read: the batch of lines 2-1001 is written and counted, the line to
    look from is named as for any stopped import, exit 130; importing again finishes the rest."""
    path = write_results(tmp_path / "r.csv", _results(2500))
    real = ResultWriter.parse

    def parse(self, line, record, today):
        if line == 1502:
            raise KeyboardInterrupt
        return real(self, line, record, today)

    monkeypatch.setattr(ResultWriter, "parse", parse)
    done = run_elimu(database, tmp_path, "registry", "import-results", str(path))
    assert done.exit_code == 130, done.output
    assert re.fullmatch(
        r"added 1000, updated 0, unchanged 0, rejected 0 \(1000 rows in [0-9.]+ s\); the import stopped at line "
        r"1002: that line and those after it were not all imported; import the file again once the error is put "
        r"right \(rows already imported count as unchanged\)\n", done.stdout)  # fmt: skip
    assert done.stderr == "Error: interrupted (Ctrl-C)\n"
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(ExamResult)) == 1000
    monkeypatch.setattr(ResultWriter, "parse", real)
    again = run_elimu(database, tmp_path, "registry", "import-results", str(path))
    assert again.exit_code == 0 and again.stdout.startswith("added 1500, updated 0, unchanged 1000, rejected 0 (")


def test_a_second_ctrl_c_while_the_queued_batches_are_written_still_prints_what_was_stored(
        sqlite_database, tmp_path, monkeypatch):
    """A second Ctrl-C while the first's queued batches were written (SQLite's one writer on lines
    1002-2001, lines 2002-4001 queued) was raised in the middle of that wait: the counts and the line
    to import again from were never printed. Now it stops the wait: the queued batches are dropped,
    the one being written is named as maybe stored, and the counts, the line and exit 130 follow."""
    path = write_results(tmp_path / "r.csv", _results(5000))
    real_parse, real_write, real_drain = ResultWriter.parse, ResultWriter.write, batches._drain
    release = threading.Event()

    def parse(self, line, record, today):
        if line == 4502:
            raise KeyboardInterrupt  # the first Ctrl-C, while line 4502 is read
        return real_parse(self, line, record, today)

    def write(self, session, rows):
        if rows[0].line == 1002:
            release.wait(60)  # still being written when the import ends
        return real_write(self, session, rows)

    def drain(*args):
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, as the wait for the writers begins
        return real_drain(*args)

    monkeypatch.setattr(ResultWriter, "parse", parse)
    monkeypatch.setattr(ResultWriter, "write", write)
    monkeypatch.setattr(batches, "_drain", drain)
    try:
        done = run_elimu(sqlite_database, tmp_path, "registry", "import-results", str(path))
    finally:
        release.set()
    assert done.exit_code == 130, done.output
    assert re.fullmatch(
        r"added 1000, updated 0, unchanged 0, rejected 0 \(1000 rows in [0-9.]+ s\); the import stopped at line "
        r"1002: that line and those after it were not all imported; import the file again once the error is put "
        r"right \(rows already imported count as unchanged\); lines 1002-2001 were being written when it was "
        r"stopped again and may or may not be stored\n", done.stdout)  # fmt: skip
    assert done.stderr == "Error: interrupted (Ctrl-C)\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    for thread in threading.enumerate():
        if thread.name.startswith("elimu-import-writer-"):
            thread.join(60)  # the batch being written commits whole after the counts (a process ending drops it)
    with sqlite_database.session() as session:
        assert session.scalar(select(func.count()).select_from(ExamResult)) == 2000  # lines 2002-4001 dropped
    monkeypatch.undo()
    again = run_elimu(sqlite_database, tmp_path, "registry", "import-results", str(path))
    assert again.exit_code == 0 and again.stdout.startswith("added 3000, updated 0, unchanged 2000, rejected 0 (")


def test_one_ctrl_c_once_every_line_is_read_lets_the_import_finish(sqlite_database, tmp_path, monkeypatch):
    """A Ctrl-C arriving while the last batches are written (every line read) is a first Ctrl-C: the
    batches queued are written, so the import finishes and says so; a second would stop it."""
    path = write_results(tmp_path / "r.csv", _results(2500))
    real_drain = batches._drain

    def drain(*args):
        os.kill(os.getpid(), signal.SIGINT)
        return real_drain(*args)

    monkeypatch.setattr(batches, "_drain", drain)
    done = run_elimu(sqlite_database, tmp_path, "registry", "import-results", str(path))
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("added 2500, updated 0, unchanged 0, rejected 0 (") and done.stderr == ""


def test_a_file_piped_in_is_imported(database, tmp_path):
    """`cat learners.csv | elimu registry import-learners -`: standard input is read as the file
    (copied aside first: the importer opens it by name), its messages naming it `stdin`."""
    path = write_learners(tmp_path / "l.csv", [learner(upi="KE1"), learner(upi="KE2", birth_certificate_no="X2",
                                                                             institution_name="Kilimani P")])
    done = run_elimu(database, tmp_path, "registry", "import-learners", "-", stdin=path.read_bytes())
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("added 2, updated 0, unchanged 0, rejected 0 (2 rows in ")
    assert done.stderr.startswith("stdin: line 3: institution_name 'Kilimani P' differs")
    empty = run_elimu(database, tmp_path, "registry", "import-results", "-", stdin=b"")
    assert empty.exit_code == 2 and empty.stderr == "Error: stdin: empty file: the first line must be the header\n"


def _elimu_process(database, tmp_path, *args: str, **run) -> subprocess.CompletedProcess:
    """``elimu ARGS`` in its own process (its standard input a real pipe or terminal), bytes out."""
    environ = {**os.environ, "DATABASE_URL": database.url, "ELIMU_ENV": "development", "ELIMU_SECRET_KEY": SECRET,
               "ELIMU_INSTANCE_PATH": str(tmp_path)}
    environ.pop("REDIS_URL", None)
    return subprocess.run([sys.executable, "-c", "from gateway.cli import main; main()", *args], env=environ,
                          capture_output=True, timeout=60, check=False, **run)


def test_dev_stdin_fed_by_a_pipe_is_imported(sqlite_database, tmp_path):
    """`cat results.csv | elimu registry import-results /dev/stdin` said "no such file": a pipe is
    not a regular file."""
    path = write_results(tmp_path / "r.csv", _results(3))
    done = _elimu_process(sqlite_database, tmp_path, "registry", "import-results", "/dev/stdin",
                          input=path.read_bytes())
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("added 3, updated 0, unchanged 0, rejected 0 (3 rows in ")
    assert done.stderr == b""


def test_dash_on_a_terminal_is_refused_not_waited_on(sqlite_database, tmp_path):
    """`elimu registry import-results -` typed with nothing piped in: one line, exit 2, instead of
    waiting for a CSV file to be typed."""
    operator, terminal = pty.openpty()
    try:
        done = _elimu_process(sqlite_database, tmp_path, "registry", "import-results", "-", stdin=terminal)
    finally:
        os.close(operator)
        os.close(terminal)
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode() == ("Error: -: standard input is a terminal, not a file: pipe the file in (cat FILE.csv | "
                           "elimu registry import-results -) or name it\n")
