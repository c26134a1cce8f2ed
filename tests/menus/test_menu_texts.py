"""The catalogues: same keys and placeholders in every language, printable ASCII, every key used."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from gateway.config import USSD_CODE_MAX
from menus.layout import BODY_LIMIT
from menus.texts import CATALOGUES, LANGUAGES, text

ROOT = Path(__file__).resolve().parents[2]


def placeholders(value: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(value) if field is not None}


def test_catalogues_have_identical_keys():
    en = set(CATALOGUES["en"])
    for lang in LANGUAGES:
        assert set(CATALOGUES[lang]) == en, f"{lang}: {set(CATALOGUES[lang]) ^ en}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_placeholders_match_english(lang):
    for key, value in CATALOGUES[lang].items():
        assert placeholders(value) == placeholders(CATALOGUES["en"][key]), key


@pytest.mark.parametrize("lang", LANGUAGES)
def test_texts_are_printable_ascii(lang):
    for key, value in CATALOGUES[lang].items():
        assert all(" " <= ch <= "~" for ch in value), key


def test_every_key_is_used_by_code():
    sources = "".join(p.read_text() for folder in ("menus", "registry", "gateway") for p in (ROOT / folder).rglob("*.py")
                      if "texts" not in p.parts)
    unused = [key for key in CATALOGUES["en"] if f'"{key}"' not in sources and f"'{key}'" not in sources and not key.startswith("status.state.")]
    assert unused == []


def test_unknown_language_falls_back_to_english():
    assert text("fr", "main.title") == CATALOGUES["en"]["main.title"]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_texts_naming_the_longest_allowed_ussd_code_fit_a_screen(lang):
    """Some END screens (the gateway's "slow down", a busy answer) are built without the engine's
    trimming: with the longest code the settings accept, each still fits."""
    code = "*" + "1" * (USSD_CODE_MAX - 2) + "#"
    naming = {key: value for key, value in CATALOGUES[lang].items() if placeholders(value) & {"code", "ussd"}}
    assert "end.slow_down" in naming
    for key, value in naming.items():
        if placeholders(value) <= {"code", "ussd"}:
            assert len(value.format(code=code, ussd=code)) <= BODY_LIMIT, key
