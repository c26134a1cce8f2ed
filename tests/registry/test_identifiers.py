"""Phone numbers, UPIs, index numbers, counties, class levels and exam grades."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.counties import COUNTIES, InvalidCounty, normalize_county_code
from registry.exams import (
    EXAMS,
    InvalidExamData,
    check_grade,
    check_points,
    check_subjects,
    check_year,
    exam_named,
)
from registry.identifiers import (
    MSISDN_FORMS,
    UPI_ALPHABET,
    InvalidIndexNumber,
    InvalidMsisdn,
    InvalidUpi,
    generate_upi,
    is_valid_assigned_upi,
    normalize_index_number,
    normalize_msisdn,
    normalize_upi,
    parse_msisdn,
    upi_check_char,
    upi_tokens,
)
from registry.importer.fields import phone as fast_phone
from registry.levels import SCHOOL_GRADES, InvalidGrade, normalize_school_grade

# --- MSISDN -------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["0712 345 678", "712345678", "254712345678", "+254712345678", "+254 712-345-678"])
def test_usual_forms_give_one_e164_number(raw):
    assert normalize_msisdn(raw) == "+254712345678"
    assert fast_phone(raw) == "+254712345678"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("020 2345678", "not a mobile number"),  # Nairobi landline
        ("+14155552671", "not a Kenyan number"),
        ("+255712345678", "not a Kenyan number"),  # Tanzania
        ("07123", "not a valid Kenyan number"),
        ("", "empty"),
        ("hello", "not a phone number"),
    ],
)
def test_refused_numbers_say_why(raw, reason):
    with pytest.raises(InvalidMsisdn, match=reason):
        normalize_msisdn(raw)
    if raw:
        with pytest.raises(InvalidMsisdn, match=reason):
            fast_phone(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("000254712345678", "+254712345678"),  # Kenya's international prefix (DOMAIN.md)
        ("000 254 712 345 678", "+254712345678"),
        ("00254712345678", "+254712345678"),  # most countries' prefix: a number written from abroad
        ("00 254 712 345 678", "+254712345678"),
        ("00254 (0)712 345 678", "+254712345678"),
        ("+254 (0)712 345 678", "+254712345678"),  # the trunk 0 in brackets
        ("+254 0712 345 678", "+254712345678"),
        ("254712345678", "+254712345678"),
        ("254 0712 345678", "+254712345678"),
        ("0110 200 300", "+254110200300"),
        ("110200300", "+254110200300"),
        ("\uff10\uff17\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18", "+254712345678"),  # full-width
        ("\u0660\u0667\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668", "+254712345678"),  # Arabic-Indic
        ("\u0662\u0665\u0664\u0667\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668", "+254712345678"),
        ("+\u0662\u0665\u0664 \u0667\u0661\u0662 \u0663\u0664\u0665 \u0666\u0667\u0668", "+254712345678"),
        ("\u06f0\u06f0\u06f2\u06f5\u06f4\u06f7\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7\u06f8",
         "+254712345678"),  # Extended Arabic-Indic (Persian/Urdu keyboards), 00254...
    ],
)
def test_what_a_registry_clerk_types_for_a_kenyan_mobile_is_taken(raw, expected):
    """``00254...`` was refused as "wrong length or prefix"; the others were taken and must stay so."""
    assert normalize_msisdn(raw) == parse_msisdn(raw) == expected
    assert fast_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "phone number is empty"),
        ("hello", "not a phone number (it has no digits)"),
        ("+", "not a phone number (it has no digits)"),
        ("+2", "too few digits"),
        ("00", "too few digits"),
        ("000", "too few digits after the international prefix"),
        ("+999 712345678", "no country has the code after the +"),
        ("0712345678901234567890", "too many digits for one phone number"),
        ("0" * 300, "too many digits for one phone number"),
        ("07123", "not a valid Kenyan number: too few digits"),
        ("07123456789", "not a valid Kenyan number: too many digits"),
        ("0254712345678", "not a valid Kenyan number: too many digits"),  # the trunk 0 and the country code
        ("0109123456", "not a valid Kenyan number: no network has its prefix"),
        ("0044 7911 123456", "not a Kenyan number (country code +44)"),  # was "wrong length or prefix"
        ("000 44 7911 123456", "not a Kenyan number (country code +44)"),
        ("+255 712 345 678", "not a Kenyan number (country code +255)"),
        ("020 2345678", "not a mobile number (landlines cannot receive SMS or use USSD)"),
    ],
)
def test_a_refusal_says_what_is_wrong_and_the_forms_taken_in_our_own_words(raw, reason):
    """phonenumbers' own texts ("not a phone number: (1) The string supplied did not seem to be a
    phone number.") went into import lines and CLI errors: each refusal is now our plain reason and
    the forms we take, whichever path (fast or full parse) refuses it."""
    for check in (normalize_msisdn, parse_msisdn, fast_phone) if raw else (normalize_msisdn, parse_msisdn):
        with pytest.raises(InvalidMsisdn) as refused:
            check(raw)
        assert str(refused.value) == f"{reason}; {MSISDN_FORMS}", check
    assert MSISDN_FORMS == "a Kenyan mobile number is 07... or 01... (10 digits), or +2547... or +2541..."


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("+000254712345678", "a + comes before the country code (+254...), never before 0"),
        ("+0 254 712 345 678", "a + comes before the country code (+254...), never before 0"),
        ("0712345678 ext 5", "it has an extension ('ext 5'): a mobile number has none, give the number alone"),
        ("0712345678 Ext. 5", "it has an extension ('Ext. 5'): a mobile number has none, give the number alone"),
        ("0712345678 x5", "it has an extension ('x5'): a mobile number has none, give the number alone"),
        ("+254712345678;ext=5", "it has an extension (';ext=5'): a mobile number has none, give the number alone"),
        ("0712345678#5", "it has an extension ('#5'): a mobile number has none, give the number alone"),
        ("0712345678,5", "it has an extension (',5'): a mobile number has none, give the number alone"),
        ("Mary 0712345678", "it has letters ('Mary'): give the digits only"),
        ("tel:+254712345678", "it has letters ('tel'): give the digits only"),
        ("O712345678", "it has letters ('O'): give the digits only (0 and 1, not O, I or l)"),
        ("0712345678~", "it has characters a phone number is not written with ('~')"),
        ("254712345678.0", "it looks like a number a spreadsheet formatted (the .0 at the end): format the column "
                           "as text and export again"),
        ("712345678.0", "it looks like a number a spreadsheet formatted (the .0 at the end): format the column "
                        "as text and export again"),
    ],
)
def test_what_phonenumbers_would_tidy_into_a_number_is_refused_in_our_words(raw, reason):
    """phonenumbers takes each of these as +254712345678 (a leading +000, an extension, letters
    around the digits) or calls the spreadsheet's float "too many digits": a cell or an argument
    like them is more likely a typing error than a phone, and the clerk is told which."""
    for check in (normalize_msisdn, parse_msisdn, fast_phone):
        with pytest.raises(InvalidMsisdn) as refused:
            check(raw)
        assert str(refused.value) == f"{reason}; {MSISDN_FORMS}", check


@pytest.mark.parametrize("raw", ["+254712345678", "254712345678", "0712345678", "+254110200300"])
def test_the_forms_providers_send_never_reach_the_written_form_checks(raw, monkeypatch):
    """AT's phoneNumber and from (+254...) and a generic gateway's msisdn (254...) are answered by
    the fast path: the USSD hop pays nothing for the checks above."""
    import registry.identifiers as identifiers

    def unexpected(*_args):
        raise AssertionError("slow path")

    monkeypatch.setattr(identifiers, "_check_written_form", unexpected)
    assert normalize_msisdn.__wrapped__(raw) == ("+254" + raw[-9:])


def test_separators_of_other_scripts_are_still_taken():
    """Dashes of any kind, the minus sign, full-width brackets and blanks: as before."""
    for raw in ("0712\u2013345\u2013678", "0712\u2212345\u2212678", "\uff080712\uff09345 678",
                "0712\u00a0345\u00a0678", "0712.345.678", "0712/345/678", "+ 254 712 345 678"):
        assert parse_msisdn(raw) == "+254712345678", raw


def test_new_01xx_ranges_are_mobile():
    assert normalize_msisdn("0110 200300") == "+254110200300"
    assert normalize_msisdn("0100456789") == "+254100456789"


_phone_text = st.one_of(
    st.from_regex(r"(\+?254|0)?[17][0-9]{8}", fullmatch=True),
    st.from_regex(r"(\+?254 ?|0)?[17][0-9]{2}[ -]?[0-9]{3}[ -]?[0-9]{3}", fullmatch=True),
    st.text(alphabet="+0123456789 -", max_size=16),
)


@settings(max_examples=400)
@given(_phone_text)
def test_fast_path_agrees_with_the_full_parse(raw):
    """``normalize_msisdn`` skips phonenumbers' parse for the usual forms: same answer, same refusals."""
    try:
        expected = parse_msisdn(raw)
    except InvalidMsisdn:
        expected = None
    try:
        got = normalize_msisdn(raw)
    except InvalidMsisdn:
        got = None
    assert got == expected


def test_fast_path_agrees_on_every_mobile_prefix():
    """Every 01xx and 07xx prefix, E.164 and local: taken or refused exactly as the full parse does."""
    for prefix in [*range(100, 200), *range(700, 800)]:
        for raw in (f"+254{prefix}{tail}" for tail in ("000000", "123456", "999999")):
            for form in (raw, "0" + raw[4:]):
                try:
                    expected = parse_msisdn(form)
                except InvalidMsisdn as exc:
                    with pytest.raises(InvalidMsisdn) as refused:
                        normalize_msisdn(form)
                    assert str(refused.value) == str(exc), form
                else:
                    assert normalize_msisdn(form) == expected, form


# --- UPI ----------------------------------------------------------------------------------------


def test_alphabet_has_no_look_alikes_and_prime_size():
    assert not set("01OIL") & set(UPI_ALPHABET)
    assert len(UPI_ALPHABET) == len(set(UPI_ALPHABET)) == 31


def test_generated_upis_are_valid_and_random():
    upis = {generate_upi() for _ in range(2000)}
    assert len(upis) > 1990
    assert all(len(u) == 6 and is_valid_assigned_upi(u) for u in upis)


def test_seeded_generation_is_deterministic():
    assert [generate_upi(random.Random(7)) for _ in range(3)] == [generate_upi(random.Random(7))] * 3


def test_check_char_completes_a_body():
    body = "ZQ6NF"
    assert body + upi_check_char(body) == "ZQ6NFN"
    assert is_valid_assigned_upi(" zq6nfn ")
    with pytest.raises(ValueError):
        upi_check_char("ZQ6N0")


_upis = st.randoms(use_true_random=False).map(generate_upi)


@settings(max_examples=300)
@given(_upis, st.integers(0, 5), st.sampled_from(UPI_ALPHABET + "01OIL"))
def test_every_single_character_change_is_detected(upi, position, replacement):
    if upi[position] == replacement:
        replacement = UPI_ALPHABET[(UPI_ALPHABET.index(replacement) + 1) % len(UPI_ALPHABET)]
    changed = upi[:position] + replacement + upi[position + 1 :]
    assert is_valid_assigned_upi(upi)
    assert not is_valid_assigned_upi(changed)


@settings(max_examples=300)
@given(_upis, st.integers(0, 4))
def test_every_adjacent_swap_is_detected(upi, position):
    a, b = upi[position], upi[position + 1]
    swapped = upi[:position] + b + a + upi[position + 2 :]
    assert is_valid_assigned_upi(swapped) == (a == b)


def test_all_changes_of_one_upi_exhaustively():
    """Every position, every other character, every neighbour swap: none passes the check."""
    for upi in ("ZQ6NFN", "9EP5BA", generate_upi(random.Random(1))):
        for i in range(6):
            for ch in UPI_ALPHABET:
                if ch != upi[i]:
                    assert not is_valid_assigned_upi(upi[:i] + ch + upi[i + 1 :])
            if i < 5 and upi[i] != upi[i + 1]:
                assert not is_valid_assigned_upi(upi[:i] + upi[i + 1] + upi[i] + upi[i + 2 :])


def test_imported_upis_keep_their_format():
    assert normalize_upi("  ab12cd34 ") == "AB12CD34"
    assert normalize_upi("KE-0001/7") == "KE-0001/7"
    with pytest.raises(InvalidUpi, match="empty"):
        normalize_upi("  ")
    with pytest.raises(InvalidUpi, match="cannot have"):
        normalize_upi("AB 12")
    with pytest.raises(InvalidUpi, match="longer"):
        normalize_upi("A" * 33)


# --- index numbers, counties, grades, exams -------------------------------------------------------


def test_kcse_index_numbers_are_eleven_digits_kept_as_text():
    assert normalize_index_number("03611030002", "KCSE") == "03611030002"
    assert normalize_index_number("366 1103 0002", "kcpe") == "36611030002"
    for bad in ("3661103000", "366110300021", "3661103000A", ""):
        with pytest.raises(InvalidIndexNumber):
            normalize_index_number(bad, "KCSE")


def test_digits_of_other_scripts_are_never_stored_as_they_came():
    """``\\d`` takes Arabic-Indic or full-width digits: a number stored so could never match a caller."""
    assert normalize_msisdn("+2547\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668") == "+254712345678"
    assert fast_phone("07\uff11\uff12345678") == "+254712345678"
    for bad in ("\uff11\uff19\uff13\uff10\uff11\uff10\uff11\uff12\uff10\uff19\uff19", "1930101\u0662099"):
        with pytest.raises(InvalidIndexNumber):
            normalize_index_number(bad, "KCSE")


def test_assessment_numbers_for_cbc_exams():
    assert normalize_index_number("a304719011", "KJSEA") == "A304719011"
    with pytest.raises(InvalidIndexNumber):
        normalize_index_number("12", "KPSEA")


def test_county_codes():
    assert len(COUNTIES) == 47
    assert COUNTIES["047"] == "Nairobi City" and COUNTIES["026"] == "Trans Nzoia" and COUNTIES["027"] == "Uasin Gishu"
    assert normalize_county_code("47") == "047"
    assert normalize_county_code("001") == "001"
    for bad, reason in (("000", "001-047"), ("048", "001-047"), ("147", "NEMIS code"), ("Nairobi", "001-047")):
        with pytest.raises(InvalidCounty, match=reason):
            normalize_county_code(bad)


def test_school_grades():
    assert len(SCHOOL_GRADES) == 18
    assert normalize_school_grade("grade 4") == "Grade 4"
    assert normalize_school_grade("FORM4") == "Form 4"
    assert normalize_school_grade("pp1") == "PP1"
    for bad in ("Grade 13", "Form 5", "Class 8", "PP3"):
        with pytest.raises(InvalidGrade):
            normalize_school_grade(bad)


def test_exam_grades_keep_their_sign_and_case():
    kcse = exam_named("kcse")
    assert check_grade(kcse, "A-") == "A-"
    for bad in ("a-", "A+", "A -", "E-"):
        with pytest.raises(InvalidExamData):
            check_grade(kcse, bad)
    assert check_grade(EXAMS["KJSEA"], "EE1") == "EE1"
    assert check_grade(EXAMS["KPSEA"], "ME") == "ME"
    with pytest.raises(InvalidExamData):
        check_grade(EXAMS["KJSEA"], "B+")


def test_subjects_are_validated_and_returned_unchanged():
    kcse = EXAMS["KCSE"]
    assert check_subjects(kcse, "ENG:B+;KIS:A-;MAT:A") == "ENG:B+;KIS:A-;MAT:A"
    assert check_subjects(EXAMS["KCPE"], "ENG:73 B+;MAT:A") == "ENG:73 B+;MAT:A"
    assert check_subjects(kcse, " ENG:B+;KIS:A-; ") == "ENG:B+;KIS:A-"  # a trailing separator is dropped
    assert check_subjects(kcse, ";") == ""
    for bad, reason in (("ENG:B+;ENG:A", "twice"), ("ENG-B+", "CODE:GRADE"), ("ENG:Q", "not a KCSE grade"),
                        ("english:A", "capital"), ("ENG:B+;;KIS:A-", "empty entry")):  # fmt: skip
        with pytest.raises(InvalidExamData, match=reason):
            check_subjects(kcse, bad)


def test_exam_years_and_points():
    assert check_year(EXAMS["KCSE"], "2025") == 2025
    for exam, year, reason in (("KCPE", "2024", "last sat in 2023"), ("KJSEA", "2024", "first sat in 2025"),
                               ("KCSE", "25", "four digits"), ("KCSE", "2999", "future")):  # fmt: skip
        with pytest.raises(InvalidExamData, match=reason):
            check_year(EXAMS[exam], year)
    assert check_points(EXAMS["KCSE"], "") is None
    assert check_points(EXAMS["KCSE"], "84") == 84
    with pytest.raises(InvalidExamData, match="maximum"):
        check_points(EXAMS["KJSEA"], "73")


def test_a_kcpe_subject_mark_is_out_of_100():
    """'ENG:730 B+' (a slipped key for 73) was imported and went out in the reply as ENG:730 B+: a KCPE
    subject is marked out of 100 (five of them make the 500)."""
    kcpe = EXAMS["KCPE"]
    assert check_subjects(kcpe, "ENG:100 A;KIS:0 E;MAT:07 E") == "ENG:100 A;KIS:0 E;MAT:07 E"
    for bad in ("ENG:730 B+", "ENG:101 A", "ENG:999 A"):
        with pytest.raises(InvalidExamData, match="ENG mark .* above 100"):
            check_subjects(kcpe, bad)


def test_the_upis_a_text_holds_are_among_its_upi_shaped_words():
    """Assigned and imported UPIs alike, whole words only: a word with lower-case letters, or a UPI
    inside a longer run of UPI characters, is no UPI."""
    words = upi_tokens("UPI: Jane K. ZQ6NFN; Peter K. ZKA8MQ (+1 more: dial *384*12#) NEM/2017-44 xZQ6NFN ZQ6NFNx")
    assert {"ZQ6NFN", "ZKA8MQ", "NEM/2017-44"} <= words
    assert not words & {"Jane", "ZQ6NFNx", "xZQ6NFN", "dial"}
    assert upi_tokens("") == set()
