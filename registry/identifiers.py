"""Identifiers: Kenyan mobile numbers (MSISDN), UPIs and exam index numbers."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType


class InvalidMsisdn(ValueError):
    """A phone number we cannot use, with a reason a person can act on."""


_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


def normalize_msisdn(raw: str) -> str:
    """Any usual form of a Kenyan mobile number -> E.164 (``+2547…``/``+2541…``).

    Raises InvalidMsisdn for landlines, foreign numbers and malformed input.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidMsisdn("phone number is empty")
    digits = "".join(ch for ch in text if ch.isdigit())
    if not text.startswith("+") and digits.startswith("254") and len(digits) == 12:
        text = "+" + digits
    elif not text.startswith("+") and len(digits) == 9 and digits[0] in "17":
        text = "0" + digits
    try:
        number = phonenumbers.parse(text, "KE")
    except NumberParseException as exc:
        raise InvalidMsisdn(f"not a phone number: {exc}") from None
    if number.country_code != 254:
        raise InvalidMsisdn(f"not a Kenyan number (country code +{number.country_code})")
    if not phonenumbers.is_valid_number(number):
        raise InvalidMsisdn("not a valid Kenyan number (wrong length or prefix)")
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidMsisdn("not a mobile number (landlines cannot receive SMS or use USSD)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
