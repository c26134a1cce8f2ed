"""Import learners.csv: one row per learner-guardian pair, written in batches of upserts.

Each batch takes a handful of statements whatever its size: look up the batch's institutions,
learners, guardians and links by key (one array parameter each, see ``bulk``), then insert and
update in bulk. A batch is one
transaction; when a concurrent import wins a race on a unique key (a UPI, a phone, an institution
code) the batch is rolled back and redone against what that import committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from operator import attrgetter
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from ..counties import normalize_county_code
from ..db import Database
from ..identifiers import InvalidMsisdn, generate_upi, normalize_upi
from ..levels import normalize_school_grade
from ..models import Guardian, GuardianLink, Institution, Learner, Transfer, TransferState
from . import fields as f
from .batches import BatchWriter, Record, run_import
from .bulk import Bulk
from .first_rows import FirstRows
from .report import ImportReport, Outcome, Problems, ProgressHandler, RejectHandler, RowRejected, WarnHandler

COLUMNS = (
    "upi", "first_name", "middle_name", "last_name", "date_of_birth", "gender", "birth_certificate_no",
    "assessment_no", "institution_code", "institution_name", "county_code", "grade", "guardian_name",
    "guardian_phone", "guardian_relationship",
)  # fmt: skip
LEARNER_FIELDS = (
    "first_name", "middle_name", "last_name", "date_of_birth", "gender", "birth_certificate_no",
    "assessment_no", "grade",
)  # fmt: skip

_learners = Learner.__table__
_institutions = Institution.__table__
_guardians = Guardian.__table__
_links = GuardianLink.__table__
_transfers = Transfer.__table__
OPEN_TRANSFER = (TransferState.REQUESTED.value, TransferState.RELEASED.value)

_learner_fields = attrgetter(*LEARNER_FIELDS)
_NUMBERS = ("birth_certificate_no", "assessment_no")  # what identifies a learner without a upi, in that order
_MAX_INSTITUTION_WARNINGS = 10  # differing names (or counties) reported per institution code


@dataclass(slots=True)
class LearnerRow:
    """One validated row of learners.csv (fields in the order of ``COLUMNS``)."""

    line: int
    upi: str | None
    first_name: str
    middle_name: str | None
    last_name: str
    date_of_birth: date
    gender: str
    birth_certificate_no: str | None
    assessment_no: str | None
    institution_code: str
    institution_name: str
    county_code: str
    grade: str
    guardian_name: str | None
    guardian_phone: str | None
    relationship: str
    # What makes rows one learner: the UPI, else the birth certificate, else the assessment number.
    key: tuple[str, str] = field(init=False)

    def __post_init__(self) -> None:
        if self.upi:
            self.key = ("upi", self.upi)
        elif self.birth_certificate_no:
            self.key = ("birth_certificate_no", self.birth_certificate_no)
        else:
            self.key = ("assessment_no", self.assessment_no or "")

    def learner_values(self) -> tuple[object, ...]:
        return (*_learner_fields(self), self.institution_code)


Check = tuple[str, Callable[..., Any], tuple[Any, ...]]


@lru_cache(maxsize=4)
def _checks(today: date) -> tuple[Check, ...]:
    """``(column, check, extra arguments)`` for each column, in ``COLUMNS`` order."""
    return (
        ("upi", _upi, ()),
        ("first_name", f.text, ("first_name", 80, True)),
        ("middle_name", f.text, ("middle_name", 80)),
        ("last_name", f.text, ("last_name", 80, True)),
        ("date_of_birth", f.iso_date, ("date_of_birth", today)),
        ("gender", f.gender, ()),
        ("birth_certificate_no", f.identifier, ("birth_certificate_no",)),
        ("assessment_no", f.identifier, ("assessment_no",)),
        ("institution_code", f.code, ("institution_code",)),
        ("institution_name", f.text, ("institution_name", 200, True)),
        ("county_code", normalize_county_code, ()),
        ("grade", normalize_school_grade, ()),
        ("guardian_name", f.text, ("guardian_name", 160)),
        ("guardian_phone", _phone, ()),
        ("guardian_relationship", f.relationship, ()),
    )


def parse_learner(line: int, record: dict[str, str], today: date) -> LearnerRow:
    """Validate one record; RowRejected names every problem in it."""
    checks = _checks(today)
    try:
        values = [check(record[column], *extra) for column, check, extra in checks]
    except ValueError:
        problems = Problems()
        for column, check, extra in checks:
            problems(check, record[column], *extra)
        problems.raise_any()
        raise
    row = LearnerRow(line, *values)
    if not (row.upi or row.birth_certificate_no or row.assessment_no):
        raise RowRejected("a row without upi needs birth_certificate_no or assessment_no to identify the learner")
    return row


def _upi(value: str) -> str | None:
    return normalize_upi(value) if value else None


def _phone(value: str) -> str | None:
    try:
        return f.phone(value)
    except InvalidMsisdn as exc:
        raise ValueError(f"guardian_phone {value!r}: {exc}") from None


class LearnerWriter(BatchWriter[LearnerRow]):
    """Writes batches of learner rows; remembers institutions across batches, and the first row of
    each learner in the file, so a later row giving other learner details is rejected wherever it
    lies (in the same batch or a million lines on), not written over the first."""

    def __init__(self, upi_factory: Callable[[], str] = generate_upi) -> None:
        super().__init__()
        self.upi_factory = upi_factory
        self.institutions: dict[str, int] = {}  # code -> id, for codes this import already wrote
        # code -> (name, county, line) of the first row naming it: what the import writes
        self.first_institution: dict[str, tuple[str, str, int]] = {}
        self._differing: dict[str, set[tuple[str, str]]] = {}  # code -> (name, county) already warned about
        self.first_rows = FirstRows((*LEARNER_FIELDS, "institution_code"))

    def parse(self, line: int, record: Record, today: date) -> LearnerRow:
        row = parse_learner(line, record, today)
        self._same_learner(row)
        earlier = self.first_rows.differ("|".join(row.key), line, row.learner_values())
        if earlier is not None:
            raise _details_differ(earlier[0], row.key, earlier[1])
        self._check_institution(row)
        return row

    def close(self) -> None:
        self.first_rows.close()

    def _same_learner(self, row: LearnerRow) -> None:
        """A row without a upi whose birth certificate (else assessment number) an earlier row of
        the file gave with a upi is that learner's row (the clerk wrote the upi on one guardian's row
        only): it takes the upi's key, so the two are not two learners. A row with a upi whose number
        an earlier row gave without one is rejected: that row was imported as a learner of its own."""
        given = [(kind, value) for kind in _NUMBERS if (value := getattr(row, kind))]
        if row.upi is None:
            kind, value = given[0]
            first, _ = self.first_rows.first_naming(f"{kind}|{value}", "|".join(row.key), row.line)
            if first.startswith("upi|"):
                row.key = ("upi", first[4:])
            return
        for kind, value in given:
            first, line = self.first_rows.first_naming(f"{kind}|{value}", f"upi|{row.upi}", row.line)
            if not first.startswith("upi|"):
                raise RowRejected(
                    f"{kind} {value} is on line {line} without a upi, which made it a learner of its own: give "
                    f"upi {row.upi} on line {line} too, or leave it off this line"
                )

    def _check_institution(self, row: LearnerRow) -> None:
        """Remember the first row naming each institution code; warn when a later one names it otherwise.

        A warning, not a rejection: the code identifies the school and the learner's row is sound,
        and rejecting would drop every later learner of a school whose first row has a typo.
        """
        code, name, county = row.institution_code, row.institution_name, row.county_code
        first = self.first_institution.get(code)
        if first is None:
            self.first_institution[code] = (name, county, row.line)
            return
        if first[0] == name and first[1] == county:
            return
        seen = self._differing.setdefault(code, set())
        if (name, county) in seen or len(seen) >= _MAX_INSTITUTION_WARNINGS:
            return
        seen.add((name, county))
        pairs = (("institution_name", name, first[0]), ("county_code", county, first[1]))
        differ = " and ".join(f"{n} {new!r} differs from {old!r}" for n, new, old in pairs if new != old)
        line = first[2]
        text = f"{differ} on line {line} (same institution_code {code}); the import keeps line {line}'s"
        if len(seen) == _MAX_INSTITUTION_WARNINGS:
            text += f" (further rows naming {code} otherwise are not listed)"
        self.warn(row.line, text)

    def group_key(self, row: LearnerRow) -> object:
        return row.key

    def committed(self) -> None:
        self.institutions.update(self.pop_staged())

    def write(self, session: Session, rows: list[LearnerRow]) -> dict[int, Outcome | RowRejected]:
        self.pop_staged()
        bulk = Bulk(session)
        bulk.begin_write()
        institution_ids = self._upsert_institutions(bulk, rows)
        outcomes: dict[int, Outcome | RowRejected] = {}
        groups: dict[tuple[str, str], list[LearnerRow]] = {}
        for row in rows:
            group = groups.setdefault(row.key, [])
            if group and row.learner_values() != group[0].learner_values():
                first = group[0]
                differ = [n for n in (*LEARNER_FIELDS, "institution_code") if getattr(row, n) != getattr(first, n)]
                outcomes[row.line] = _details_differ(first.line, first.key, differ)
                continue
            group.append(row)

        learner_ids, learner_outcomes = self._upsert_learners(bulk, groups, institution_ids)
        for key, group in groups.items():
            refused = learner_outcomes[key]
            if isinstance(refused, RowRejected):
                outcomes.update((row.line, refused) for row in group)
        accepted = [row for key, group in groups.items() for row in group
                    if not isinstance(learner_outcomes[key], RowRejected)]
        link_outcomes = self._upsert_links(bulk, [r for r in accepted if r.guardian_phone], learner_ids)
        for row in accepted:
            mine = [learner_outcomes[row.key]] if row is groups[row.key][0] else []
            link = link_outcomes.get(row.line, Outcome.UNCHANGED)
            if isinstance(link, RowRejected):
                outcomes[row.line] = link
                continue
            mine.append(link)
            outcomes[row.line] = next((o for o in (Outcome.ADDED, Outcome.UPDATED) if o in mine), Outcome.UNCHANGED)
        return outcomes

    def _upsert_institutions(self, bulk: Bulk, rows: list[LearnerRow]) -> dict[str, int]:
        """Ids by code; the first row naming a code in this import (whichever batch commits first)
        sets its name and county."""
        known = self.institutions
        ids: dict[str, int] = {}
        new: dict[str, tuple[str, str]] = {}  # code -> (name, county)
        for row in rows:
            code = row.institution_code
            if code in known:
                ids[code] = known[code]
            elif code not in new:
                first = self.first_institution.get(code)
                new[code] = (first[0], first[1]) if first else (row.institution_name, row.county_code)
        if not new:
            return ids
        t = _institutions
        changes = []
        for inst_id, code, name, county in bulk.select_in((t.c.id, t.c.code, t.c.name, t.c.county_code), t.c.code, new):
            wanted = new.pop(code)
            ids[code] = inst_id
            if (name, county) != wanted:
                changes.append({"id": inst_id, "name": wanted[0], "county_code": wanted[1]})
        bulk.update_by_id(t, changes)
        inserted = bulk.insert(
            t,
            [{"code": c, "name": name, "county_code": county} for c, (name, county) in new.items()],
            returning=("id", "code"),
            order=("code",),
        )
        ids.update({code: inst_id for inst_id, code in inserted})
        self.stage({code: ids[code] for code in ids if code not in known})
        return ids

    def _upsert_learners(
        self, bulk: Bulk, groups: dict[tuple[str, str], list[LearnerRow]], institution_ids: dict[str, int]
    ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], Outcome | RowRejected]]:
        """Learner ids and outcomes by learner key.

        A row found by its birth certificate or assessment number whose date of birth is not the
        stored learner's is refused: it is another child under a mistyped number (updating would
        put one child's name, school and guardians on another's record), or a correction, which
        names the learner's upi. A blank identifier keeps the stored one."""
        t = _learners
        columns = (t.c.id, t.c.upi, *(t.c[n] for n in LEARNER_FIELDS), t.c.institution_id)
        existing: dict[tuple[str, str], Row[Any]] = {}
        bulk.lock_keys("learner", (f"{kind}:{value}" for kind, value in groups if kind != "upi"))
        for kind in ("upi", "birth_certificate_no", "assessment_no"):
            values = [key[1] for key in groups if key[0] == kind]
            for found in sorted(bulk.select_in(columns, t.c[kind], values), key=lambda r: -r.id):
                existing[(kind, getattr(found, kind))] = found  # the oldest learner wins when several match

        ids: dict[tuple[str, str], int] = {}
        outcome: dict[tuple[str, str], Outcome | RowRejected] = {}
        changes: list[dict[str, Any]] = []
        new: list[tuple[tuple[str, str], dict[str, Any]]] = []
        moving = self._in_transfer(bulk, [existing[key] for key, group in groups.items() if key in existing
                                          and existing[key].institution_id != institution_ids[group[0].institution_code]])
        for key, group in groups.items():
            row = group[0]
            values: dict[str, Any] = dict(zip(LEARNER_FIELDS, _learner_fields(row), strict=True))
            values["institution_id"] = institution_ids[row.institution_code]
            found = existing.get(key)
            if found is None:
                new.append((key, values))
                continue
            if found.id in moving:  # a transfer in progress decides the school, not the file
                values["institution_id"] = moving[found.id][2]
                self.note(row.line, f"learner {found.upi} stays at {moving[found.id][0]}: a transfer is in "
                                    f"progress ({moving[found.id][1]}); complete it (elimu registry admit) or cancel "
                                    "it (elimu registry cancel-transfer), then import again to move the learner")
            if key[0] != "upi" and found.date_of_birth != values["date_of_birth"]:
                outcome[key] = RowRejected(
                    f"{key[0]} {key[1]} belongs to learner {found.upi}, born on another date: check the number, "
                    "or give the upi to correct that learner's date of birth")
                continue
            for name in ("birth_certificate_no", "assessment_no"):
                if values[name] is None:
                    values[name] = getattr(found, name)
            ids[key] = found.id
            if all(getattr(found, n) == v for n, v in values.items()):
                outcome[key] = Outcome.UNCHANGED
            else:
                outcome[key] = Outcome.UPDATED
                changes.append({"id": found.id, **values})
        bulk.update_by_id(t, changes)
        if new:
            upis = self._assign_upis(bulk, [key for key, _ in new])
            key_of = {upis[key]: key for key, _ in new}
            inserted = bulk.insert(
                t, [{"upi": upis[key], **values} for key, values in new], returning=("id", "upi"), order=("upi",)
            )
            for learner_id, upi in inserted:
                ids[key_of[upi]] = learner_id
                outcome[key_of[upi]] = Outcome.ADDED
        return ids, outcome

    def _in_transfer(self, bulk: Bulk, learners: list[Row[Any]]) -> dict[int, tuple[str, str, int]]:
        """Of ``learners`` (whose school the file changes), those with a transfer in progress: learner
        id -> (current school's code, the transfer's state, current school's id). Their rows are
        locked first and their schools read again: a transfer requested, released or admitted since
        the batch read them is seen, and none can start until the batch has written them."""
        if not learners:
            return {}
        school = dict(bulk.lock_by_id(_learners, ("id", "institution_id"), [lrn.id for lrn in learners]))
        t = _transfers
        open_states = {r.learner_id: r.state for r in bulk.select_in((t.c.learner_id, t.c.state), t.c.learner_id,
                                                                      list(school))
                       if r.state in OPEN_TRANSFER}
        if not open_states:
            return {}
        i = _institutions
        codes = dict(bulk.select_in((i.c.id, i.c.code), i.c.id, {school[lid] for lid in open_states}))
        return {lid: (codes[school[lid]], str(state), school[lid]) for lid, state in open_states.items()}

    def _assign_upis(self, bulk: Bulk, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Given UPIs as they are; fresh ones for the rest, checked against the table (the unique
        constraint catches a concurrent import taking the same one: the batch is then redone)."""
        upis = {key: key[1] for key in keys if key[0] == "upi"}
        taken = set(upis.values())
        wanted = [key for key in keys if key[0] != "upi"]
        for _attempt in range(100):
            if not wanted:
                return upis
            candidates: dict[str, tuple[str, str]] = {}
            for key in wanted:
                upi = self.upi_factory()
                if upi not in taken and upi not in candidates:
                    candidates[upi] = key
            clash = {r.upi for r in bulk.select_in((_learners.c.upi,), _learners.c.upi, candidates)}
            for upi, key in candidates.items():
                if upi not in clash:
                    upis[key] = upi
                    taken.add(upi)
            wanted = [key for key in wanted if key not in upis]
        raise RuntimeError("no free UPI found in 100 attempts: is the UPI space exhausted?")

    def _upsert_guardians(self, bulk: Bulk, rows: list[LearnerRow]) -> tuple[dict[str, int], set[str]]:
        """Guardian ids by phone, and the phones whose missing name this batch filled in. Each is
        linked by the batch: one whose last link had come off is no longer unlinked."""
        names: dict[str, str | None] = {}
        for row in rows:
            if not names.get(row.guardian_phone):  # type: ignore[arg-type]
                names[row.guardian_phone] = row.guardian_name  # type: ignore[index]
        t = _guardians
        ids: dict[str, int] = {}
        fills: dict[str, dict[str, Any]] = {}
        relinked: list[dict[str, Any]] = []
        for gid, phone, name, unlinked_at in bulk.select_in(
            (t.c.id, t.c.phone, t.c.name, t.c.unlinked_at), t.c.phone, names
        ):
            ids[phone] = gid
            if name is None and names[phone]:
                fills[phone] = {"id": gid, "name": names[phone]}
            if unlinked_at is not None:
                relinked.append({"id": gid})
        bulk.update_by_id(t, list(fills.values()))
        bulk.update_by_id(t, relinked, unlinked_at=None)
        inserted = bulk.insert(
            t, [{"phone": p, "name": n} for p, n in names.items() if p not in ids], returning=("id", "phone"),
            order=("phone",),
        )
        ids.update({phone: gid for gid, phone in inserted})
        return ids, set(fills)

    def _upsert_links(
        self, bulk: Bulk, rows: list[LearnerRow], learner_ids: dict[tuple[str, str], int]
    ) -> dict[int, Outcome | RowRejected]:
        """Learner-guardian links; the outcome of each row that has a phone."""
        if not rows:
            return {}
        guardian_ids, named = self._upsert_guardians(bulk, rows)
        t = _links
        links = {
            (r.learner_id, r.guardian_id): (r.id, r.relationship)
            for r in bulk.select_in(
                (t.c.id, t.c.learner_id, t.c.guardian_id, t.c.relationship),
                t.c.learner_id,
                {learner_ids[r.key] for r in rows},
            )
        }
        outcomes: dict[int, Outcome | RowRejected] = {}
        seen: dict[tuple[int, int], LearnerRow] = {}
        inserts, changes = [], []
        for row in rows:
            pair = (learner_ids[row.key], guardian_ids[row.guardian_phone])  # type: ignore[index]
            earlier = seen.setdefault(pair, row)
            if earlier is not row:
                outcomes[row.line] = (
                    Outcome.UNCHANGED
                    if earlier.relationship == row.relationship
                    else RowRejected(f"guardian_relationship differs from line {earlier.line} (same learner and phone)")
                )
            elif pair not in links:
                inserts.append({"learner_id": pair[0], "guardian_id": pair[1], "relationship": row.relationship})
                outcomes[row.line] = Outcome.ADDED
            elif links[pair][1] != row.relationship:
                changes.append({"id": links[pair][0], "relationship": row.relationship})
                outcomes[row.line] = Outcome.UPDATED
            elif row.guardian_phone in named:
                outcomes[row.line] = Outcome.UPDATED
        bulk.insert(t, inserts, order=("learner_id", "guardian_id"))
        bulk.update_by_id(t, changes)
        return outcomes


def _details_differ(line: int, key: tuple[str, str], fields: list[str]) -> RowRejected:
    return RowRejected(f"learner details differ from line {line} (same {key[0]}): {', '.join(fields)}")


def import_learners(
    db: Database,
    records: Iterable[tuple[int, Record | str]],
    *,
    batch_size: int = 1000,
    on_reject: RejectHandler | None = None,
    progress: ProgressHandler | None = None,
    upi_factory: Callable[[], str] = generate_upi,
    today: date | None = None,
    writers: int | None = None,
    on_warning: WarnHandler | None = None,
    report: ImportReport | None = None,
) -> ImportReport:
    """Import learner records (``(line, record)`` pairs, e.g. from ``CsvFile``); see the module doc.

    ``on_warning(line, text)``: a row names an institution code with another name or county than
    the code's first row (which the import keeps).
    """
    return run_import(
        db, records, LearnerWriter(upi_factory), batch_size=batch_size, on_reject=on_reject, progress=progress,
        today=today, writers=writers, on_warning=on_warning, report=report,
    )


__all__ = ["COLUMNS", "LearnerRow", "import_learners", "parse_learner"]
