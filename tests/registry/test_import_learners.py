"""learners.csv import: scale, idempotence, rejected lines, grouping, concurrency (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from registry.identifiers import generate_upi, is_valid_assigned_upi
from registry.importer import LEARNER_COLUMNS, CsvFile, UnreadableFile
from registry.importer.first_rows import FirstRows
from registry.models import Guardian, GuardianLink, Institution, Learner
from tests.figures import report_figure
from tests.pg_waits import wait_until_blocked

from .support import generate_learners, learner, run_learners, snapshot, write_learners


def _count(database, model) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def _in_threads(work: Callable[[Path], object], paths: list[Path]) -> list[Exception]:
    """``work(path)`` for every path at once, one thread each; what they raised."""
    errors: list[Exception] = []

    def run(path: Path) -> None:
        try:
            work(path)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(p,)) for p in paths]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return errors


def test_ten_thousand_learners_import_and_a_second_import_changes_nothing(database, tmp_path, request):
    path = generate_learners(tmp_path / "learners.csv", 10_000)
    report, rejected = run_learners(database, path)
    assert rejected == []
    assert (report.added, report.updated, report.unchanged, report.rejected) == (11_000, 0, 0, 0)
    report_figure("import", f"learners rows/s ({request.node.callspec.params['database']})", round(report.rows / report.seconds))

    assert _count(database, Learner) == 10_000
    assert _count(database, Guardian) == 10_000 + 1000 - 2  # three learners share one phone
    assert _count(database, GuardianLink) == 11_000
    assert _count(database, Institution) == 40
    with database.session() as session:
        upis = list(session.scalars(select(Learner.upi)))
        shared = session.scalars(
            select(func.count()).select_from(GuardianLink).join(Guardian).where(Guardian.phone == "+254712345678")
        ).one()
    assert len(set(upis)) == 10_000
    assigned = [u for u in upis if not u.startswith("IMP")]
    assert len(assigned) == 10_000 - 1429 and all(is_valid_assigned_upi(u) for u in assigned)
    assert shared == 3

    before = snapshot(database)
    again, rejected = run_learners(database, path)
    assert rejected == []
    assert (again.added, again.updated, again.unchanged, again.rejected) == (0, 0, 11_000, 0)
    assert snapshot(database) == before


def test_a_guardian_phone_line_is_refused_in_our_words_with_the_forms_taken(sqlite_database, tmp_path):
    """An import's line error quoted phonenumbers ("not a phone number: (1) The string supplied did
    not seem to be a phone number."): a clerk is told what is wrong and what to type instead."""
    path = write_learners(tmp_path / "learners.csv", [
        learner(upi="AAA001", guardian_phone="N/A"), learner(upi="AAA002", guardian_phone="0712 345 678 901 234 567"),
        learner(upi="AAA003", guardian_phone="00254712345678")])  # fmt: skip
    report, rejected = run_learners(sqlite_database, path)
    forms = "a Kenyan mobile number is 07... or 01... (10 digits), or +2547... or +2541..."
    assert rejected == [(2, f"guardian_phone 'N/A': not a phone number (it has no digits); {forms}"),
                        (3, f"guardian_phone '0712 345 678 901 234 567': too many digits for one phone number; {forms}")]
    assert report.added == 1  # 00254...: a number written from abroad


def test_a_guardian_phone_a_spreadsheet_formatted_or_with_an_extension_is_refused_by_line(sqlite_database, tmp_path):
    """254712345678.0 (a number column) was "too many digits", and 0712345678 ext 5 or +000254...
    were stored as +254712345678: each line now says what is wrong, and the other rows are kept."""
    path = write_learners(tmp_path / "learners.csv", [
        learner(upi="AAA001", guardian_phone="254712345678.0"), learner(upi="AAA002", guardian_phone="0712345678 ext 5"),
        learner(upi="AAA003", guardian_phone="+000254712345678"), learner(upi="AAA004", guardian_phone="0712345678")])  # fmt: skip
    report, rejected = run_learners(sqlite_database, path)
    forms = "a Kenyan mobile number is 07... or 01... (10 digits), or +2547... or +2541..."
    assert rejected == [
        (2, "guardian_phone '254712345678.0': it looks like a number a spreadsheet formatted (the .0 at the end): "
            f"format the column as text and export again; {forms}"),
        (3, "guardian_phone '0712345678 ext 5': it has an extension ('ext 5'): a mobile number has none, give the "
            f"number alone; {forms}"),
        (4, f"guardian_phone '+000254712345678': a + comes before the country code (+254...), never before 0; {forms}"),
    ]
    assert report.added == 1


def test_bad_rows_are_named_by_line_and_the_good_rows_kept(database, tmp_path):
    path = tmp_path / "learners.csv"
    rows = [
        learner(upi="AAA001", first_name="Good", guardian_phone="0712 345 678"),  # line 2
        learner(upi="AAA002", date_of_birth="04/03/2014"),  # line 3
        learner(upi="AAA003", gender="X", county_code="048"),  # line 4
        learner(upi="AAA004", guardian_phone="020 2345678"),  # line 5: landline
        learner(upi="AAA005", first_name="", grade="Class 9"),  # line 6
        learner(upi="AAA006", institution_name='Multi\nline "school"'),  # lines 7-8: quoted newline, good
        learner(upi="AAA007", guardian_relationship="neighbour"),  # line 9
        learner(upi="", birth_certificate_no="", assessment_no=""),  # line 10: nothing identifies it
        learner(upi="AAA008", date_of_birth="2099-01-01", guardian_phone="+14155552671"),  # line 11
        learner(upi="AAA009", first_name="Also good", guardian_phone="", guardian_name=""),  # line 12
    ]
    write_learners(path, rows)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("AAA010,too,few,fields\n")  # line 13
    report, rejected = run_learners(database, path)

    reasons = dict(rejected)
    assert sorted(reasons) == [3, 4, 5, 6, 9, 10, 11, 13]
    assert "date_of_birth must be YYYY-MM-DD" in reasons[3]
    assert "gender must be M or F" in reasons[4] and "county_code must be 001-047" in reasons[4]
    assert "not a mobile number" in reasons[5]
    assert "first_name is required" in reasons[6] and "grade must be" in reasons[6]
    assert "guardian_relationship must be one of" in reasons[9]
    assert "needs birth_certificate_no or assessment_no" in reasons[10]
    assert "in the future" in reasons[11] and "not a Kenyan number" in reasons[11]
    assert "expected 15 fields" in reasons[13]
    assert (report.added, report.rejected) == (3, 8)
    with database.session() as session:
        assert sorted(session.scalars(select(Learner.upi))) == ["AAA001", "AAA006", "AAA009"]
        assert session.scalars(select(Guardian.phone)).all() == ["+254712345678"]


def test_rows_of_one_learner_are_one_learner_with_several_guardians(database, tmp_path):
    path = write_learners(
        tmp_path / "learners.csv",
        [
            learner(upi="ke77xz", guardian_phone="0712345678", guardian_relationship="mother"),
            learner(upi="KE77XZ", guardian_phone="0722111222", guardian_relationship="father"),
            learner(upi="KE77XZ", guardian_phone="0733200300", guardian_relationship="self"),
            learner(upi="", birth_certificate_no="9988776", guardian_phone="0712345678"),
            learner(upi="", birth_certificate_no="9988776", guardian_phone="0110200300", guardian_relationship="father"),
        ],
    )
    report, rejected = run_learners(database, path)
    assert rejected == [] and report.added == 5
    with database.session() as session:
        learners = {lrn.birth_certificate_no: lrn for lrn in session.scalars(select(Learner))}
        assert set(learners) == {"5102347", "9988776"}
        assert learners["5102347"].upi == "KE77XZ"
        assert is_valid_assigned_upi(learners["9988776"].upi)
        links = {(link.learner.upi, link.guardian.phone, link.relationship_) for link in session.scalars(select(GuardianLink))}
    assert len(links) == 5
    assert ("KE77XZ", "+254733200300", "self") in links


def test_conflicting_rows_for_one_learner_are_rejected(database, tmp_path):
    path = write_learners(
        tmp_path / "learners.csv",
        [
            learner(upi="KE77XZ", grade="Grade 6"),
            learner(upi="KE77XZ", grade="Grade 7", guardian_phone="0722111222"),
            learner(upi="KE77XZ", guardian_relationship="father"),
        ],
    )
    report, rejected = run_learners(database, path)
    assert rejected == [
        (3, "learner details differ from line 2 (same upi): grade"),
        (4, "guardian_relationship differs from line 2 (same learner and phone)"),
    ]
    assert (report.added, report.rejected) == (1, 2)


def test_changes_are_counted_as_updates(database, tmp_path):
    rows = [learner(upi=f"KE{i:04d}", birth_certificate_no=f"B{i}", guardian_phone=f"07220000{i:02d}") for i in range(5)]
    run_learners(database, write_learners(tmp_path / "a.csv", rows))
    rows[1]["grade"] = "Grade 7"
    rows[2]["guardian_relationship"] = "guardian"
    rows[3]["institution_code"], rows[3]["institution_name"] = "KS5L", "Kisumu Lakeside"
    report, rejected = run_learners(database, write_learners(tmp_path / "b.csv", rows))
    assert rejected == []
    assert (report.added, report.updated, report.unchanged) == (0, 3, 2)
    with database.session() as session:
        moved = session.scalars(select(Learner).where(Learner.upi == "KE0003")).one()
        assert moved.institution.code == "KS5L"


def test_institutions_are_upserted_by_code_and_guardian_names_filled_once(database, tmp_path):
    run_learners(database, write_learners(tmp_path / "a.csv", [learner(upi="KE1", guardian_name="")]))
    rows = [learner(upi="KE1", institution_name="Kilimani Primary School", county_code="47", guardian_name="Mary W.")]
    report, _ = run_learners(database, write_learners(tmp_path / "b.csv", rows))
    assert report.updated == 1
    with database.session() as session:
        school = session.scalars(select(Institution)).one()
        assert (school.code, school.name, school.county_code) == ("NB7K", "Kilimani Primary School", "047")
        assert session.scalars(select(Guardian.name)).one() == "Mary W."
    rows[0]["guardian_name"] = "Someone else"
    report, _ = run_learners(database, write_learners(tmp_path / "c.csv", rows))
    assert report.unchanged == 1
    with database.session() as session:
        assert session.scalars(select(Guardian.name)).one() == "Mary W."


def test_an_institution_named_otherwise_than_on_its_first_row_is_a_warning(database, tmp_path):
    """The row is imported, the first row's name and county are kept, and each difference is told once."""
    rows = [learner(upi=f"KE{i}", birth_certificate_no=f"B{i}", guardian_phone=f"07220000{i:02d}")
            for i in range(8)]
    rows[2]["institution_name"] = "Kilimani Primary School"  # line 4
    rows[3]["institution_name"] = "Kilimani Primary School"  # line 5: the same difference, not repeated
    rows[5]["county_code"] = "46"  # line 7
    rows[6].update(institution_name="Kilimani Pri", county_code="046")  # line 8
    warnings: list[tuple[int, str]] = []
    report, rejected = run_learners(database, write_learners(tmp_path / "a.csv", rows), batch_size=2,
                                    on_warning=lambda line, text: warnings.append((line, text)))  # fmt: skip
    assert rejected == [] and report.added == 8 and report.warnings == 3
    same = "on line 2 (same institution_code NB7K); the import keeps line 2's"
    assert warnings == [
        (4, f"institution_name 'Kilimani Primary School' differs from 'Kilimani Primary' {same}"),
        (7, f"county_code '046' differs from '047' {same}"),
        (8, f"institution_name 'Kilimani Pri' differs from 'Kilimani Primary' and county_code '046' differs "
            f"from '047' {same}"),
    ]
    with database.session() as session:
        school = session.scalars(select(Institution)).one()
        assert (school.name, school.county_code) == ("Kilimani Primary", "047")


def test_the_first_row_names_an_institution_whichever_batch_commits_first(database, tmp_path, monkeypatch):
    """Two writers, line 3's batch naming the institution otherwise than line 2's: it must keep line
    2's name, not write its own. On PostgreSQL the second batch (line 3) has started before the
    first (line 2) committed the institution, and looks it up only after that commit; on SQLite,
    where a batch holds the write lock from its start, the second batch commits first."""
    import registry.importer.bulk as bulk
    import registry.importer.learners as learners

    write, committed, select_in = learners.LearnerWriter.write, learners.LearnerWriter.committed, bulk.Bulk.select_in
    batch = threading.local()
    looking, done = threading.Event(), {2: threading.Event(), 3: threading.Event()}

    def write_in_order(self, session, rows):
        batch.line = rows[0].line
        if batch.line == 2 and database.is_sqlite:
            assert done[3].wait(30), "line 3's batch did not commit"
        outcomes = write(self, session, rows)
        if batch.line == 2 and not database.is_sqlite:  # the institution inserted, not committed
            assert looking.wait(30), "line 3's batch did not come to look the institution up"
        return outcomes

    def committed_then_tell(self):
        committed(self)
        done[batch.line].set()

    def select_after_the_commit(self, columns, key, values):
        if batch.line == 3 and key.table.name == "institutions" and not database.is_sqlite:
            looking.set()
            assert done[2].wait(30), "line 2's batch did not commit"
        return select_in(self, columns, key, values)

    monkeypatch.setattr(learners.LearnerWriter, "write", write_in_order)
    monkeypatch.setattr(learners.LearnerWriter, "committed", committed_then_tell)
    monkeypatch.setattr(bulk.Bulk, "select_in", select_after_the_commit)
    rows = [learner(upi="KE1"), learner(upi="KE2", birth_certificate_no="B2", institution_name="Kilimani P")]
    report, _ = run_learners(database, write_learners(tmp_path / "a.csv", rows), batch_size=1, writers=2)
    assert (report.added, report.warnings) == (2, 1)
    with database.session() as session:
        assert session.scalars(select(Institution.name)).one() == "Kilimani Primary"
    assert looking.is_set() != database.is_sqlite  # PostgreSQL: line 3's batch looked after line 2's commit


def test_a_learner_in_transfer_keeps_the_school_the_transfer_decides(database, tmp_path):
    """An import that moves a learner whose transfer is in progress (released, not yet admitted)
    left the transfer open under a learner already at the new school; the school stays until the
    transfer is admitted or cancelled, and the import says so."""
    from registry.services.transfers import admit, release, request_transfer

    other = learner(upi="KE2", birth_certificate_no="B2", guardian_phone="0722000002", institution_code="KS5L",
                    institution_name="Kisumu Lakeside", county_code="042")
    run_learners(database, write_learners(tmp_path / "a.csv", [learner(upi="KE1", grade="Grade 6"), other]))
    with database.transaction() as session:
        request_transfer(session, "KE1", "KS5L")
    moved = learner(upi="KE1", grade="Grade 7", institution_code="KS5L", institution_name="Kisumu Lakeside",
                    county_code="042")
    path = write_learners(tmp_path / "b.csv", [moved])
    warnings: list[tuple[int, str]] = []
    report, rejected = run_learners(database, path, on_warning=lambda line, text: warnings.append((line, text)))
    assert rejected == [] and (report.updated, report.warnings) == (1, 1)  # the grade, not the school
    assert warnings == [(2, "learner KE1 stays at NB7K: a transfer is in progress (requested); complete it "
                            "(elimu registry admit) or cancel it (elimu registry cancel-transfer), then import "
                            "again to move the learner")]
    with database.transaction() as session:
        stored = session.scalars(select(Learner).where(Learner.upi == "KE1")).one()
        assert (stored.institution.code, stored.grade) == ("NB7K", "Grade 7")
        release(session, "KE1")
        admit(session, "KE1", "KS5L")
    warnings.clear()
    again, _ = run_learners(database, path, on_warning=lambda line, text: warnings.append((line, text)))
    assert (again.unchanged, warnings) == (1, [])


def test_small_batches_keep_a_learners_adjacent_rows_together(database, tmp_path):
    rows = []
    for i in range(7):
        rows += [learner(upi=f"KE{i}", guardian_phone=f"07220000{i}{j}", grade="Grade 6") for j in range(3)]
    rows[5]["grade"] = "Grade 7"  # third row of KE1 disagrees with its first
    report, rejected = run_learners(database, write_learners(tmp_path / "a.csv", rows), batch_size=2)
    assert rejected == [(7, "learner details differ from line 5 (same upi): grade")]
    assert report.added == 20


def test_a_learners_rows_far_apart_that_disagree_are_rejected_not_written_over_the_first(database, tmp_path):
    """Rows of one learner in different batches (a county export sorted by guardian, say): the later
    one giving other details was written over the first, and each import of the file counted both
    as updated, changing the learner back and forth; it is rejected as within a batch."""
    rows = [learner(upi="KE1", grade="Grade 6")]
    rows += [learner(upi=f"KE{i}", birth_certificate_no=f"B{i}", guardian_phone=f"07220001{i:02d}") for i in range(2, 9)]
    rows += [learner(upi="KE1", grade="Grade 7", guardian_phone="0722111222")]
    path = write_learners(tmp_path / "a.csv", rows)
    report, rejected = run_learners(database, path, batch_size=2, writers=2)
    assert rejected == [(10, "learner details differ from line 2 (same upi): grade")]
    assert (report.added, report.rejected) == (8, 1)
    with database.session() as session:
        assert session.scalars(select(Learner.grade).where(Learner.upi == "KE1")).one() == "Grade 6"
    again, _ = run_learners(database, path, batch_size=2, writers=2)
    assert (again.added, again.updated, again.unchanged, again.rejected) == (0, 0, 8, 1)


@pytest.mark.parametrize("threads", [2])
def test_concurrent_imports_never_give_two_learners_one_upi(database, tmp_path, threads):
    """Both imports draw UPIs from the same seeded sequence, so they collide on purpose; and both
    name 100 of the same UPI-less learners (by birth certificate), which must stay 100 learners."""
    paths = []
    for t in range(threads):
        rows = [
            learner(upi="", birth_certificate_no=f"T{t}-{i}", guardian_phone=f"07{t}{i:07d}") for i in range(600)
        ]
        rows[::6] = [learner(upi="", birth_certificate_no=f"SHARED-{i}", guardian_phone=f"0799{t}{i:05d}") for i in range(100)]
        paths.append(write_learners(tmp_path / f"l{t}.csv", rows))
    reports, drawn = [], []

    def run(path):
        rng = random.Random(42)

        def factory() -> str:
            drawn.append(1)
            return generate_upi(rng)

        reports.append(run_learners(database, path, upi_factory=factory, batch_size=100)[0])

    assert _in_threads(run, paths) == []
    assert [r.added for r in reports] == [600] * threads  # each row adds a learner or a link
    with database.session() as session:
        upis = list(session.scalars(select(Learner.upi)))
        certificates = list(session.scalars(select(Learner.birth_certificate_no)))
        links = session.scalar(select(func.count()).select_from(GuardianLink))
    assert len(upis) == len(set(upis)) == 500 * threads + 100
    assert len(certificates) == len(set(certificates))
    assert links == 600 * threads
    assert len(drawn) > 600 * threads  # the same sequence twice: collisions were met and resolved


def test_two_imports_creating_the_same_upi_less_learner_make_one(database, tmp_path, monkeypatch):
    """The first import has looked the birth certificates up (none found) and is about to insert the
    learners when the second starts: the second must wait for the first (PostgreSQL: seen waiting
    on a lock; SQLite: its first write handed to the driver while the first holds the write lock)
    and then find its learners."""
    import registry.importer.bulk as bulk
    import registry.importer.learners as learners

    insert, write = bulk.Bulk.insert, learners.LearnerWriter.write
    inside, go, second_done, writing = threading.Event(), threading.Event(), threading.Event(), threading.Event()
    writers: list[object] = []
    batch = threading.local()

    def insert_once_in(self, table, rows, *args, **kwargs):
        if table.name == "learners" and not inside.is_set():  # the first import, the learners looked up
            inside.set()
            assert go.wait(30), "the second import was not seen waiting"
        return insert(self, table, rows, *args, **kwargs)

    def write_telling_which(self, session, rows):
        if self not in writers:
            writers.append(self)
        batch.second = writers.index(self) == 1
        return write(self, session, rows)

    def saw(_conn, _cursor, statement: str, *_args: object) -> None:
        if getattr(batch, "second", False) and statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            writing.set()

    run_learners(database, write_learners(tmp_path / "school.csv", [learner(upi="SEED", guardian_phone="")]))
    monkeypatch.setattr(bulk.Bulk, "insert", insert_once_in)
    monkeypatch.setattr(learners.LearnerWriter, "write", write_telling_which)
    paths = [
        write_learners(tmp_path / f"l{t}.csv",
                       [learner(upi="", birth_certificate_no=f"SAME-{i}", guardian_phone=f"07{t}{i:07d}") for i in range(20)])
        for t in range(2)
    ]  # fmt: skip
    errors: list[Exception] = []

    def run(path: Path, done: threading.Event | None = None) -> None:
        try:
            run_learners(database, path)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)
        finally:
            if done is not None:
                done.set()

    first = threading.Thread(target=run, args=(paths[0],))
    first.start()
    assert inside.wait(30), "the first import did not come to insert its learners"
    second = threading.Thread(target=run, args=(paths[1], second_done))
    event.listen(database.engine, "before_cursor_execute", saw)
    try:
        second.start()
        if database.is_sqlite:
            deadline = time.monotonic() + 60  # a bound on a hang only
            while not writing.wait(0.005) and not second_done.is_set():
                assert time.monotonic() < deadline, "the second import started no write within 60 s"
        else:
            wait_until_blocked(database, second_done)
    finally:
        event.remove(database.engine, "before_cursor_execute", saw)
    waited = not second_done.is_set()  # the first holds its lock: a second that waits cannot have ended
    go.set()
    first.join(60)
    second.join(60)
    assert not first.is_alive() and not second.is_alive()
    assert errors == []
    assert _count(database, Learner) == 21
    assert _count(database, GuardianLink) == 40
    assert waited, "the second import ended while the first was inside its window"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"upi,first_name\nA,B\n", "header lacks column(s): middle_name, last_name"),
        (b"", "empty file"),
        (",".join(LEARNER_COLUMNS).encode() + b",Not\xe9s\nKE1,J\xe9r\xf4me\n",
         "line 1: not UTF-8 text (byte 0xe9)"),
        (b"\x00\x01binary", "NUL byte"),
    ],
)
def test_unreadable_files(tmp_path, content, reason):
    path = tmp_path / "learners.csv"
    path.write_bytes(content)
    with pytest.raises(UnreadableFile, match=reason.replace("(", r"\(").replace(")", r"\)")):
        CsvFile(path, LEARNER_COLUMNS)


def test_header_may_be_in_any_order_with_a_bom_and_extra_columns(database, tmp_path):
    columns = ["Notes", *reversed(LEARNER_COLUMNS)]
    row = learner(upi="KE9")
    path = tmp_path / "learners.csv"
    path.write_text("\ufeff" + ",".join(c.replace("_", " ").title() for c in columns) + "\n"
                    + ",".join(["x", *(row[c] for c in reversed(LEARNER_COLUMNS))]) + "\n", encoding="utf-8")  # fmt: skip
    with CsvFile(path, LEARNER_COLUMNS) as source:
        assert source.ignored_columns == ["Notes"]
    report, rejected = run_learners(database, path)
    assert rejected == [] and report.added == 1


def test_a_record_holds_the_wanted_columns_stripped_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "any.csv"
    path.write_text("Notes,UPI,Grade\n x , KE1 ,Grade 4\n , ,\n\nn,KE2\ny,KE3,Form 1\n", encoding="utf-8")
    with CsvFile(path, ["grade", "upi"]) as source:
        assert list(source) == [(2, {"grade": "Grade 4", "upi": "KE1"}),
                                (5, "expected 3 fields as in the header, found 2"),
                                (6, {"grade": "Form 1", "upi": "KE3"})]
    with CsvFile(path, ["upi"]) as source:  # one column: still a record of one
        assert [record for _, record in source][0] == {"upi": "KE1"}


def test_another_child_under_a_known_birth_certificate_is_refused_not_written_over(database, tmp_path):
    """A row found by its birth certificate whose date of birth is not the stored learner's is
    another child (a mistyped number): updating would give one child's record another's name,
    school and guardian. It is refused with its line; a correction names the learner's upi."""
    first = learner(upi="", birth_certificate_no="5102347", assessment_no="3047210045", guardian_phone="0712345678")
    run_learners(database, write_learners(tmp_path / "a.csv", [first]))
    with database.session() as session:
        stored = session.scalars(select(Learner)).one()
        upi, born = stored.upi, stored.date_of_birth
    stranger = learner(upi="", first_name="Otieno", last_name="Ouma", date_of_birth="2012-01-01",
                       birth_certificate_no="5102347", assessment_no="", guardian_phone="0733999888")
    report, rejected = run_learners(database, write_learners(tmp_path / "b.csv", [stranger]))
    assert rejected == [(2, f"birth_certificate_no 5102347 belongs to learner {upi}, born on another date: check "
                            "the number, or give the upi to correct that learner's date of birth")]
    assert (report.added, report.updated, report.rejected) == (0, 0, 1)
    with database.session() as session:
        kept = session.scalars(select(Learner)).one()
        assert (kept.first_name, kept.date_of_birth, kept.assessment_no) == ("Jane", born, "3047210045")
        assert [link.guardian.phone for link in kept.guardian_links] == ["+254712345678"]  # no stranger linked

    # the same child with a corrected name and no assessment number: an update, the number kept
    fixed = {**first, "first_name": "Janet", "assessment_no": ""}
    report, rejected = run_learners(database, write_learners(tmp_path / "c.csv", [fixed]))
    assert (rejected, report.updated) == ([], 1)
    # a date of birth corrected by upi
    report, rejected = run_learners(database, write_learners(tmp_path / "d.csv", [{**fixed, "upi": upi,
                                                                                   "date_of_birth": "2014-09-06"}]))
    assert (rejected, report.updated) == ([], 1)
    with database.session() as session:
        kept = session.scalars(select(Learner)).one()
        assert (kept.first_name, str(kept.date_of_birth), kept.assessment_no) == ("Janet", "2014-09-06", "3047210045")


def test_numbers_a_spreadsheet_shortened_are_refused_not_stored(database, tmp_path):
    """Excel saves a number of 12 or more digits (a birth certificate or Maisha Namba, a phone
    written 2547...) as 1.23457E+12: the digits are lost, and two children's numbers become one.
    Twins born the same day then matched one record: the second file wrote the brother over the
    sister. Each such field is refused; identifiers merely holding an E are free text as before."""
    shortened = ("a spreadsheet shortened the number and its digits are lost: format the column as text and "
                 "export again")
    rows = [
        learner(birth_certificate_no="1.23457E+12"),  # line 2
        learner(birth_certificate_no="", assessment_no="3.0472e+11"),  # line 3
        learner(birth_certificate_no="WE4T234", guardian_phone="2.54712E+11"),  # line 4
        learner(birth_certificate_no="12E45", assessment_no="E+12"),  # line 5: free text, kept
    ]
    report, rejected = run_learners(database, write_learners(tmp_path / "a.csv", rows))
    assert rejected == [
        (2, f"birth_certificate_no '1.23457E+12': {shortened}"),
        (3, f"assessment_no '3.0472e+11': {shortened}"),
        (4, f"guardian_phone '2.54712E+11': {shortened}"),
    ]
    assert (report.added, report.rejected) == (1, 3)
    brother = learner(first_name="Otieno", birth_certificate_no="1.23457E+12", guardian_phone="0733999888")
    report, rejected = run_learners(database, write_learners(tmp_path / "b.csv", [brother]))
    assert (report.rejected, report.updated) == (1, 0)
    with database.session() as session:
        assert [(lrn.first_name, lrn.birth_certificate_no) for lrn in session.scalars(select(Learner))] == [
            ("Jane", "12E45")]


def test_a_learners_rows_with_the_upi_on_one_only_are_one_learner(database, tmp_path):
    """The clerk wrote the upi on the mother's row only: the father's row, with the same birth
    certificate (or assessment number) and no upi, is the same learner, in the same batch or far on;
    the file imported again changes nothing. Each used to be a learner of its own, the second with
    an assigned UPI, and the second import linked the father to the first as well."""
    rows = [
        learner(upi="KE77XZ", guardian_phone="0712345678"),  # line 2
        learner(upi="", guardian_phone="0722111222", guardian_relationship="father"),  # line 3
        *(learner(upi=f"KE{i:04d}", birth_certificate_no=f"B{i}", guardian_phone=f"07330{i:05d}") for i in range(5)),
        learner(upi="KE99AA", birth_certificate_no="", assessment_no="A1", guardian_phone="0744000001"),  # line 9
        learner(upi="", birth_certificate_no="5102347", guardian_phone="0744000002"),  # line 10: far from line 2
        learner(upi="", birth_certificate_no="", assessment_no="A1", guardian_phone="0744000003"),  # line 11
    ]
    path = write_learners(tmp_path / "a.csv", rows)
    report, rejected = run_learners(database, path, batch_size=2)
    assert rejected == [] and report.added == 10
    with database.session() as session:
        links = sorted((link.learner.upi, link.guardian.phone) for link in session.scalars(select(GuardianLink)))
        assert _count(database, Learner) == 7
    assert [link for link in links if link[0] in ("KE77XZ", "KE99AA")] == [
        ("KE77XZ", "+254712345678"), ("KE77XZ", "+254722111222"), ("KE77XZ", "+254744000002"),
        ("KE99AA", "+254744000001"), ("KE99AA", "+254744000003")]  # fmt: skip
    before = snapshot(database)
    again, rejected = run_learners(database, path, batch_size=2)
    assert (rejected, again.added, again.unchanged) == ([], 0, 10)
    assert snapshot(database) == before


def test_a_row_giving_the_upi_of_a_number_given_earlier_without_one_is_rejected(database, tmp_path):
    """The other order: the row without a upi came first and was imported as a learner of its own
    (an assigned UPI); a later row giving a upi with that number would make a second learner."""
    rows = [learner(upi="", guardian_phone="0722111222"), learner(upi="KE77XZ", guardian_phone="0712345678")]
    report, rejected = run_learners(database, write_learners(tmp_path / "a.csv", rows))
    assert rejected == [(3, "birth_certificate_no 5102347 is on line 2 without a upi, which made it a learner of "
                            "its own: give upi KE77XZ on line 2 too, or leave it off this line")]
    assert _count(database, Learner) == 1 and report.added == 1


def test_a_phone_field_holding_two_numbers_says_so(database, tmp_path):
    """A clerk puts both parents' numbers in one cell; it was refused as phonenumbers' '(4) The
    string supplied is too long to be a phone number'."""
    rows = [learner(guardian_phone="0712345678/0722345678"), learner(guardian_phone="0712 345 678, 0722 345 678"),
            learner(guardian_phone="+254 (0) 712 345678")]  # fmt: skip
    report, rejected = run_learners(database, write_learners(tmp_path / "a.csv", rows))
    reason = "more than one number: give each guardian's phone on a row of its own"
    assert rejected == [(2, f"guardian_phone '0712345678/0722345678': {reason}"),
                        (3, f"guardian_phone '0712 345 678, 0722 345 678': {reason}")]  # fmt: skip
    assert report.added == 1


def test_the_imports_temporary_store_of_first_rows_is_closed(sqlite_database, tmp_path, monkeypatch):
    """Each import keeps the first row of each learner in a temporary SQLite file; it is closed when
    the import ends (it was left to the garbage collector, and kept open by an error's traceback)."""
    closed: list[FirstRows] = []
    real = FirstRows.close
    monkeypatch.setattr(FirstRows, "close", lambda self: (closed.append(self), real(self)))
    run_learners(sqlite_database, write_learners(tmp_path / "a.csv", [learner()]))
    assert len(closed) == 1
