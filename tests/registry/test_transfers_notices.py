"""The texts of transfer notices: each language, GSM-7, one segment with real school names."""

from __future__ import annotations

import pytest

from registry import gsm
from registry.services.notices import TEXTS, generic_notice_text, notice_text

KILIMANI, KISUMU = "Kilimani Primary and Junior School", "Kisumu Lakeside Comprehensive School"


def test_kiswahili_notices_say_from_and_to_as_the_status_screen_does():
    """'ameruhusiwa kuhama kutoka X kwenda Y' (released from X to Y), as the USSD status reads
    'Ameruhusiwa kuhama kwenda ...'; admitted 'katika' a school."""
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
