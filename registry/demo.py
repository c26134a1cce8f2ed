"""Demo data: three schools, about fifty learners and their guardians, results and a transfer.

Deterministic (a fixed random seed), so the README can list phones and identifiers to try. The
hand-written ``FEATURED`` learners cover every flow; the rest fill the schools. Loading goes through
the real importers and services, and loading twice changes nothing.

Loading again (``elimu demo seed`` after trying the service) adds what is missing and leaves what
the registry has done with the demo data since: a learner transferred stays at the school that
admitted it, a transfer released, admitted or cancelled is not requested again, a demo phone that
chose English keeps it. The demo learners' other details are loaded as the demo defines them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from sqlalchemy import func, select

from .db import Database
from .identifiers import generate_upi
from .importer import LEARNER_COLUMNS, RESULT_COLUMNS, ImportReport, import_learners, import_results
from .importer.fields import phone as check_phone
from .models import EnrolmentState, Institution, Learner, PhoneSetting, Transfer
from .services.results import release_results
from .services.transfers import request_transfer

SCHOOLS = {
    "NB7K": ("Kilimani Primary and Junior School", "047"),
    "NY3H": ("Othaya Senior School", "019"),
    "KS5L": ("Kisumu Lakeside Comprehensive School", "042"),
}
SCHOOL_GRADES = {
    "NB7K": ["PP2", *(f"Grade {n}" for n in range(1, 10))],
    "KS5L": ["PP1", *(f"Grade {n}" for n in range(1, 10))],
    "NY3H": ["Grade 10", "Form 3", "Form 4"],
}
KCSE_CENTRE = "19301012"  # KNEC centre code of NY3H: index numbers are this + a 3-digit serial
RELEASED = [("KCSE", 2024), ("KCSE", 2025), ("KJSEA", 2025)]  # KPSEA 2025 stays unreleased
TRANSFER = ("QNWCEP", "KS5L")  # Faith: requested by Kisumu Lakeside, not yet released by Kilimani
KISWAHILI_PHONES = ("+254790123456",)


@dataclass(frozen=True)
class Guardian:
    phone: str
    name: str
    relationship: str


@dataclass(frozen=True)
class DemoLearner:
    upi: str
    first: str
    middle: str
    last: str
    dob: str
    gender: str
    birth_cert: str
    assessment_no: str
    school: str
    grade: str
    guardians: tuple[Guardian, ...]
    results: tuple[tuple[str, int, str], ...] = ()  # (exam, year, index number)
    note: str = ""

    @property
    def name(self) -> str:
        return " ".join(part for part in (self.first, self.middle, self.last) if part)


MARY = Guardian("+254712345678", "Mary Wanjiku Kamau", "mother")
FEATURED: tuple[DemoLearner, ...] = (
    DemoLearner("ZQ6NFN", "Jane", "Wambui", "Kamau", "2016-05-14", "F", "5102347", "3047210045", "NB7K", "Grade 4",
                (MARY,), note="activate as Mary with this birth cert. and date of birth; Mary has three children"),
    DemoLearner("ZKA8MQ", "Peter", "Njoroge", "Kamau", "2013-09-02", "M", "4819236", "3047190112", "NB7K", "Grade 7",
                (MARY,), (("KPSEA", 2025, "3047190112"),), note="SMS `KPSEA 3047190112 Peter`: not yet released"),
    DemoLearner("9EP5BA", "Brian", "Mwangi", "Kamau", "2008-01-23", "M", "3920418", "", "NY3H", "Form 4",
                (MARY, Guardian("+254722111222", "Brian Mwangi Kamau", "self")),
                (("KCSE", 2025, "19301012001"),), note="SMS `KCSE 19301012001 Mwangi`: A-; his own phone is linked (self)"),
    DemoLearner("WBWWGC", "Akinyi", "Achieng", "Otieno", "2010-11-30", "F", "4410925", "3042170336", "NY3H",
                "Grade 10",
                (Guardian("+254733200300", "Tom Otieno", "father"),
                 Guardian("+254110200300", "Rose Adhiambo Otieno", "mother")),
                (("KJSEA", 2025, "3042170336"),), note="two guardians; SMS `KJSEA 3042170336 Akinyi`"),
    DemoLearner("NGN3TZ", "Kevin", "Kiprono", "Cheruiyot", "2007-06-17", "M", "3615570", "", "NY3H", "Form 4",
                (Guardian("+254745600700", "Kevin Kiprono Cheruiyot", "self"),
                 Guardian("+254768304050", "Esther Jepkosgei", "mother")),
                (("KCSE", 2024, "19301012014"), ("KCSE", 2025, "19301012014")),
                note="SMS `KCSE 19301012014 Kevin` answers 2025; add `2024` for his first sitting"),
    DemoLearner("QNWCEP", "Faith", "Nafula", "Wafula", "2015-03-08", "F", "5007731", "3047200218", "NB7K", "Grade 5",
                (Guardian("+254790123456", "Nekesa Wafula", "mother"),),
                note="mid-transfer: `elimu registry release QNWCEP`, then `elimu registry admit QNWCEP --institution KS5L`; her mother's phone uses Kiswahili"),
    DemoLearner("AUTW9A", "Daniel", "Ochieng", "Onyango", "2012-08-19", "M", "4702256", "3042180077", "KS5L",
                "Grade 8", (Guardian("+254100456789", "Joseph Onyango", "father"),), note="a number on the new 01xx range"),
)  # fmt: skip

# Fixed results of the featured candidates: (exam, year, index) -> (mean grade, points, subjects)
FEATURED_RESULTS = {
    ("KPSEA", 2025, "3047190112"): ("ME", 15, "ENG:ME;KIS:EE;MAT:ME;ISC:AE;CAS:ME"),
    ("KCSE", 2025, "19301012001"): ("A-", 77, "ENG:A-;KIS:B+;MAT:A;BIO:A-;CHE:A-;PHY:A;GEO:B+"),
    ("KJSEA", 2025, "3042170336"): ("ME1", 54, "ENG:EE2;KIS:ME1;MAT:ME2;ISC:ME1;SST:EE2;PTS:AE1;AGN:ME2;CAS:EE1;CRE:ME1"),
    ("KCSE", 2024, "19301012014"): ("D+", 28, "ENG:C-;KIS:D+;MAT:D;BIO:D+;CHE:D;HIS:C-;AGR:D+"),
    ("KCSE", 2025, "19301012014"): ("C+", 49, "ENG:C+;KIS:B-;MAT:C;BIO:C+;CHE:C;HIS:B-;AGR:C+"),
}

_GIRLS = ["Wanjiru", "Faith", "Mercy", "Sharon", "Cynthia", "Joy", "Grace", "Winnie", "Purity", "Esther", "Agnes",
          "Nancy", "Lucy", "Beatrice", "Ruth", "Tabitha", "Naomi", "Caroline"]  # fmt: skip
_BOYS = ["Kevin", "Dennis", "Ian", "Emmanuel", "Collins", "Brian", "Samuel", "Joseph", "David", "Moses", "Victor",
         "Felix", "Stephen", "Allan", "George", "Martin", "Eric", "Elvis"]  # fmt: skip
# (family names, girls' middle names, boys' middle names) by community
_FAMILIES = [
    (["Kamau", "Njoroge", "Mwangi", "Kariuki", "Githinji", "Maina"], ["Wanjiku", "Njeri", "Wairimu", "Wambui"],
     ["Mwangi", "Kamau", "Njuguna", "Kimani"]),
    (["Otieno", "Odhiambo", "Onyango", "Ouma", "Okoth"], ["Achieng", "Akinyi", "Adhiambo", "Awino"],
     ["Ochieng", "Omondi", "Owino", "Otieno"]),
    (["Wafula", "Barasa", "Wekesa", "Simiyu"], ["Nafula", "Nekesa", "Naliaka"], ["Wanjala", "Masinde", "Wekesa"]),
    (["Cheruiyot", "Kirui", "Koech", "Rotich"], ["Chebet", "Jepkosgei", "Chepkoech"], ["Kiprono", "Kipchirchir", "Kibet"]),
    (["Mutua", "Musyoka", "Kioko", "Nzioka"], ["Mwende", "Kavata", "Mutheu"], ["Muema", "Mutinda", "Kyalo"]),
    (["Nyaboke", "Ondieki", "Nyamweya", "Onchiri"], ["Moraa", "Kerubo", "Kwamboka"], ["Ombati", "Nyakundi", "Mogaka"]),
]  # fmt: skip
_PARENTS_F = ["Mary", "Jane", "Alice", "Rose", "Margaret", "Susan", "Lilian", "Eunice", "Josephine", "Anne"]
_PARENTS_M = ["John", "Peter", "James", "Paul", "Francis", "Charles", "Patrick", "Daniel", "Simon", "Richard"]
_KCSE_GRADES = ["A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "E"]  # index = 12 - points
_LEVELS_8 = ["BE2", "BE1", "AE2", "AE1", "ME2", "ME1", "EE2", "EE1"]  # index = points - 1
_LEVELS_4 = ["BE", "AE", "ME", "EE"]


@dataclass
class DemoData:
    learners: list[DemoLearner] = field(default_factory=list)
    results: dict[tuple[str, int, str], tuple[str, int, str]] = field(default_factory=dict)


def build() -> DemoData:
    """The whole data set, the same every time."""
    rng = random.Random(2026)
    data = DemoData(list(FEATURED), dict(FEATURED_RESULTS))
    used_upis = {learner.upi for learner in FEATURED}
    used_phones = {g.phone for learner in FEATURED for g in learner.guardians}
    kcse_serial = 2
    per_school = {"NB7K": 15, "KS5L": 14, "NY3H": 14}
    for school, count in per_school.items():
        for n in range(count):
            grades = SCHOOL_GRADES[school]
            grade = grades[n % len(grades)]
            learner = _learner(rng, school, grade, used_upis, used_phones)
            results: list[tuple[str, int, str]] = []
            if grade == "Form 4":
                index = f"{KCSE_CENTRE}{kcse_serial:03d}"
                kcse_serial += 1 if kcse_serial != 13 else 2  # 014 is Kevin's
                results.append(("KCSE", 2025, index))
                data.results[("KCSE", 2025, index)] = _kcse(rng)
            elif grade == "Grade 10":
                results.append(("KJSEA", 2025, learner.assessment_no))
                data.results[("KJSEA", 2025, learner.assessment_no)] = _levels(rng, 9, _LEVELS_8, "ENG KIS MAT ISC SST PTS AGN CAS CRE")
            elif grade == "Grade 7":
                results.append(("KPSEA", 2025, learner.assessment_no))
                data.results[("KPSEA", 2025, learner.assessment_no)] = _levels(rng, 5, _LEVELS_4, "ENG KIS MAT ISC CAS")
            data.learners.append(replace(learner, results=tuple(results)))
    return data


def _learner(rng: random.Random, school: str, grade: str, used_upis: set[str], used_phones: set[str]) -> DemoLearner:
    family, girls_middle, boys_middle = rng.choice(_FAMILIES)
    gender = rng.choice("MF")
    first = rng.choice(_GIRLS if gender == "F" else _BOYS)
    middle = rng.choice(girls_middle if gender == "F" else boys_middle)
    last = rng.choice(family)
    level = _level(grade)
    dob = f"{2026 - level - 5 - rng.randint(0, 1)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    upi = generate_upi(rng)
    while upi in used_upis:
        upi = generate_upi(rng)
    used_upis.add(upi)
    relationship = rng.choice(["mother", "mother", "father", "guardian"])
    parent = rng.choice(_PARENTS_M if relationship == "father" else _PARENTS_F)
    guardians = [Guardian(_phone(rng, used_phones), f"{parent} {last}", relationship)]
    if level >= 10 and rng.random() < 0.4:
        guardians.append(Guardian(_phone(rng, used_phones), f"{first} {middle} {last}", "self"))
    assessment_no = f"30{SCHOOLS[school][1][1:]}{rng.randint(100000, 999999)}" if level >= 3 else ""
    return DemoLearner(upi, first, middle, last, dob, gender, str(rng.randint(3000000, 5999999)), assessment_no,
                       school, grade, tuple(guardians))  # fmt: skip


def _level(grade: str) -> int:
    """Years of schooling after PP2: Grade n -> n, Form n -> n + 8, PP1/PP2 -> -1/0."""
    kind, _, number = grade.partition(" ")
    if kind == "Form":
        return int(number) + 8
    if kind == "Grade":
        return int(number)
    return int(grade[-1]) - 2


def _phone(rng: random.Random, used: set[str]) -> str:
    while True:
        raw = rng.choice(["070", "071", "072", "079", "011", "073", "078", "010"]) + f"{rng.randint(0, 9999999):07d}"
        try:
            number = check_phone(raw)
        except ValueError:
            continue
        if number and number not in used:
            used.add(number)
            return number


def _kcse(rng: random.Random) -> tuple[str, int, str]:
    ability = rng.randint(3, 11)
    subjects = ["ENG", "KIS", "MAT", "BIO", "CHE", "PHY", "GEO"] if ability > 7 else ["ENG", "KIS", "MAT", "BIO", "CHE", "HIS", "AGR"]
    points = [max(1, min(12, ability + rng.randint(-2, 2))) for _ in subjects]
    total = sum(points)
    listing = ";".join(f"{s}:{_KCSE_GRADES[12 - p]}" for s, p in zip(subjects, points, strict=True))
    return _KCSE_GRADES[12 - round(total / 7)], total, listing


def _levels(rng: random.Random, count: int, levels: list[str], names: str) -> tuple[str, int, str]:
    top = len(levels)
    ability = rng.randint(2, top)
    points = [max(1, min(top, ability + rng.randint(-1, 1))) for _ in range(count)]
    listing = ";".join(f"{s}:{levels[p - 1]}" for s, p in zip(names.split(), points, strict=True))
    return levels[round(sum(points) / count) - 1], sum(points), listing


School = tuple[str, str, str]  # code, name, county code


def learner_records(data: DemoData, schools: dict[str, School] | None = None) -> Iterator[dict[str, str]]:
    """learners.csv rows (one per learner-guardian pair); ``schools``: the school the registry has
    a learner (by UPI) at, where it differs from the demo's (transferred since it was loaded)."""
    for learner in data.learners:
        code, name, county = (schools or {}).get(learner.upi) or (learner.school, *SCHOOLS[learner.school])
        base = {
            "upi": learner.upi, "first_name": learner.first, "middle_name": learner.middle,
            "last_name": learner.last, "date_of_birth": learner.dob, "gender": learner.gender,
            "birth_certificate_no": learner.birth_cert, "assessment_no": learner.assessment_no,
            "institution_code": code, "institution_name": name, "county_code": county,
            "grade": learner.grade,
        }  # fmt: skip
        for guardian in learner.guardians:
            yield {**base, "guardian_name": guardian.name, "guardian_phone": guardian.phone,
                   "guardian_relationship": guardian.relationship}  # fmt: skip


def result_records(data: DemoData) -> Iterator[dict[str, str]]:
    """results.csv rows."""
    for learner in data.learners:
        for exam, year, index in learner.results:
            grade, points, subjects = data.results[(exam, year, index)]
            yield {"exam": exam, "year": str(year), "index_number": index, "upi": learner.upi,
                   "candidate_name": learner.name, "mean_grade": grade, "points": str(points),
                   "subjects": subjects}  # fmt: skip


class DemoDataError(RuntimeError):
    """The demo data did not load cleanly (a bug in this module)."""


def seed(db: Database) -> tuple[ImportReport, ImportReport]:
    """Load the demo data (idempotent): learners, results, releases, the transfer, a Kiswahili phone;
    loaded again, what the registry did with it since stays (see the module docstring)."""
    data = build()
    problems: list[str] = []

    def collect(line: int, reason: str) -> None:
        problems.append(f"record {line}: {reason}")

    records = learner_records(data, _schools_now(db, data))
    learners = import_learners(db, _numbered(records, LEARNER_COLUMNS), on_reject=collect)
    results = import_results(db, _numbered(result_records(data), RESULT_COLUMNS), on_reject=collect)
    if problems:
        raise DemoDataError("; ".join(problems))
    with db.transaction() as session:
        for exam, year in RELEASED:
            release_results(session, exam, year)
        upi, school = TRANSFER
        learner = session.scalars(select(Learner).where(Learner.upi == upi)).one()
        ever = session.scalar(select(func.count()).select_from(Transfer).where(Transfer.learner_id == learner.id))
        if not ever and learner.enrolment_state is EnrolmentState.ENROLLED and learner.institution.code != school:
            request_transfer(session, upi, school)
        for phone in KISWAHILI_PHONES:
            if session.get(PhoneSetting, phone) is None:
                session.add(PhoneSetting(phone=phone, language="sw"))
    return learners, results


def _schools_now(db: Database, data: DemoData) -> dict[str, School]:
    """The demo learners the registry has at another school than the demo's, by UPI."""
    demo_school = {learner.upi: learner.school for learner in data.learners}
    with db.session() as session:
        rows = session.execute(select(Learner.upi, Institution.code, Institution.name, Institution.county_code)
                               .join(Institution, Institution.id == Learner.institution_id)
                               .where(Learner.upi.in_(demo_school)))
        return {upi: (code, name, county) for upi, code, name, county in rows if demo_school[upi] != code}


def _numbered(records: Iterator[dict[str, str]], columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    for number, record in enumerate(records, start=2):
        yield number, {column: record.get(column, "") for column in columns}


def learner_count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Learner)) or 0


def featured_table() -> list[str]:
    """Markdown rows describing the featured learners (the README's demo table)."""
    lines = [
        "| learner | UPI | born | birth cert. | assessment no. | KCSE index no. | school, grade | phones linked | try |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for learner in FEATURED:
        kcse = sorted({(index, year) for exam, year, index in learner.results if exam == "KCSE"})
        index = f"`{kcse[0][0]}` ({', '.join(str(year) for _, year in kcse)})" if kcse else "-"
        phones = "<br>".join(f"`{g.phone}` {g.name} ({g.relationship})" for g in learner.guardians)
        lines.append(
            f"| {learner.name} | `{learner.upi}` | {learner.dob} | `{learner.birth_cert}` "
            f"| {f'`{learner.assessment_no}`' if learner.assessment_no else '-'} | {index} "
            f"| {learner.school}, {learner.grade} | {phones} | {learner.note or '-'} |"
        )
    return lines
