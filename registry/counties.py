"""Kenya's 47 counties by their code in the Constitution's First Schedule (NEMIS uses 100 + code)."""

from __future__ import annotations

COUNTIES: dict[str, str] = {
    "001": "Mombasa", "002": "Kwale", "003": "Kilifi", "004": "Tana River", "005": "Lamu",
    "006": "Taita/Taveta", "007": "Garissa", "008": "Wajir", "009": "Mandera", "010": "Marsabit",
    "011": "Isiolo", "012": "Meru", "013": "Tharaka-Nithi", "014": "Embu", "015": "Kitui",
    "016": "Machakos", "017": "Makueni", "018": "Nyandarua", "019": "Nyeri", "020": "Kirinyaga",
    "021": "Murang'a", "022": "Kiambu", "023": "Turkana", "024": "West Pokot", "025": "Samburu",
    "026": "Trans Nzoia", "027": "Uasin Gishu", "028": "Elgeyo/Marakwet", "029": "Nandi",
    "030": "Baringo", "031": "Laikipia", "032": "Nakuru", "033": "Narok", "034": "Kajiado",
    "035": "Kericho", "036": "Bomet", "037": "Kakamega", "038": "Vihiga", "039": "Bungoma",
    "040": "Busia", "041": "Siaya", "042": "Kisumu", "043": "Homa Bay", "044": "Migori",
    "045": "Kisii", "046": "Nyamira", "047": "Nairobi City",
}  # fmt: skip


class InvalidCounty(ValueError):
    """A county code outside 001-047, with a reason."""


def normalize_county_code(raw: str) -> str:
    """``001``-``047`` (leading zeros restored: spreadsheets drop them, ``47`` -> ``047``)."""
    text = (raw or "").strip()
    if not text:
        raise InvalidCounty("county_code is empty")
    if not text.isdigit() or len(text) > 3:
        raise InvalidCounty(f"county_code must be 001-047, not {text!r}")
    code = text.zfill(3)
    if code in COUNTIES:
        return code
    if f"{int(code) - 100:03d}" in COUNTIES:
        raise InvalidCounty(f"county_code {text} looks like a NEMIS code (100 + county): use {int(code) - 100:03d}")
    raise InvalidCounty(f"county_code must be 001-047, not {text!r}")


def county_name(code: str) -> str:
    """The county's name for a code ``001``-``047``; KeyError for others."""
    return COUNTIES[code]
