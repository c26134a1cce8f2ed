"""The texts of transfer notices: each language, GSM-7, one segment with real school names."""

from __future__ import annotations

import pytest

from registry import gsm
from registry.services.notices import TEXTS, generic_notice_text, notice_text

KILIMANI, KISUMU = "Kilimani Primary and Junior School", "Kisumu Lakeside Comprehensive School"


def test_kiswahili_notices_say_from_and_to_as_the_status_screen_does():
    """'ameruhusiwa kuhama kutoka X kwenda Y' (released from X to Y), with the USSD status's verb
    ('Ameruhusiwa kuhama, anasubiri kupokelewa na ...'); admitted 'katika' a school."""
    assert notice_text("released", "sw", name="Faith W.", school=KILIMANI, other=KISUMU) == (
        f"Elimu: Faith W. ameruhusiwa kuhama kutoka {KILIMANI} kwenda {KISUMU}."
    )
    assert notice_text("released", "sw", name="Faith W.", school=KILIMANI) == (
        f"Elimu: Faith W. ameruhusiwa kuhama kutoka {KILIMANI} na sasa anaweza kupokelewa na shule nyingine."
    )
    assert notice_text("admitted", "sw", name="Faith W.", school=KISUMU, other=KILIMANI) == (
        f"Elimu: Faith W. amepokelewa katika {KISUMU} (kutoka {KILIMANI})."
    )


@pytest.mark.parametrize("language", ["en", "sw"])
@pytest.mark.parametrize(
    ("event", "other"), [("released", KISUMU), ("released", None), ("admitted", KISUMU), ("cancelled", None)]
)
def test_every_notice_is_one_gsm7_segment_with_long_school_names(language, event, other):
    body = notice_text(event, language, name="Faith W.", school=KILIMANI, other=other)
    assert gsm.is_gsm7(body) and gsm.segments(body) == 1
    assert gsm.segments(generic_notice_text(language, "*384*1234#")) == 1


def test_every_notice_has_both_languages():
    assert all(set(variants) == {"en", "sw"} for variants in TEXTS.values())


# The longest plausible: school names near the longest an import takes (200 characters) and a learner
# with a long first name.
LONGEST = ("St. Bakhita Kiambu Mixed Day and Boarding Comprehensive Secondary School of the Holy Ghost Fathers "
           "and the Sisters of Mercy, Kiambu County, Githunguri Sub-County, Ward of Ikinu and Komothai Division")
OTHER_LONG = ("Our Lady of Perpetual Help Nyandarua Girls' Junior Secondary Academy and Boarding Primary School "
              "of the Consolata Missionaries, Nyandarua County, Ol Kalou Sub-County, Kaimbaga Ward Location")


@pytest.mark.parametrize("language", ["en", "sw"])
@pytest.mark.parametrize(
    ("event", "other"), [("released", OTHER_LONG), ("released", None), ("admitted", OTHER_LONG), ("cancelled", None)]
)
@pytest.mark.parametrize("name", ["Faith W.", "Wanjikumuthonimainawairimu N."])
def test_a_notice_with_the_longest_names_is_still_one_sms_part(language, event, other, name):
    """Two long school names made a notice of two parts (billed twice, and split on some phones);
    the names are shortened, each still recognisable by its start, until it fits one part."""
    assert 185 < len(OTHER_LONG) < len(LONGEST) <= 200  # the import's limit
    body = notice_text(event, language, name=name, school=LONGEST, other=other)
    assert gsm.is_gsm7(body) and gsm.segments(body) == 1, (len(body), body)
    assert "St. Bakhita Kiambu" in body and (other is None or "Our Lady of" in body)
    assert name.split()[0][:10] in body and ".." not in body


def test_names_that_fit_are_not_shortened():
    full = notice_text("released", "en", name="Faith W.", school=KILIMANI, other=KISUMU)
    assert full == f"Elimu: Faith W. has been released by {KILIMANI} to {KISUMU}."
    sixty = "Moi Forces Academy Lanet Secondary School and Day Junior Wing"
    body = notice_text("admitted", "en", name="Faith W.", school=sixty, other=KISUMU)
    assert body == f"Elimu: Faith W. has been admitted to {sixty} (from {KISUMU})." and gsm.segments(body) == 1
