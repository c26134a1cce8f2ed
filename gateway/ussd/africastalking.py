"""Africa's Talking USSD: form fields -> ``UssdRequest``; ``UssdAnswer`` -> ``CON …``/``END …`` text.

A second aggregator is one more module like this one (``NAME``, ``parse_hop``, ``render``) listed in
``gateway.ussd.routes.ADAPTERS``; menus and registry stay untouched.
"""

from __future__ import annotations

from collections.abc import Mapping

from registry.identifiers import InvalidMsisdn, normalize_msisdn

from .messages import MAX_FIELD, BadUssdRequest, UssdAnswer, UssdRequest, ascii_digits, session_id_of

NAME = "africastalking"
CONTENT_TYPE = "text/plain; charset=utf-8"


def parse_hop(form: Mapping[str, str]) -> UssdRequest:
    """Read AT's session callback; raise BadUssdRequest when a required field is missing."""
    session_id = session_id_of(form, "sessionId")
    raw_phone = (form.get("phoneNumber") or "").strip()
    if not raw_phone:
        raise BadUssdRequest("phoneNumber is required")
    try:
        phone: str | None = normalize_msisdn(raw_phone[:MAX_FIELD])
    except InvalidMsisdn:
        phone = None
    text = ascii_digits(form.get("text") or "")
    return UssdRequest(
        provider=NAME,
        session_id=session_id,
        phone=phone,
        service_code=(form.get("serviceCode") or "")[:MAX_FIELD],
        network=(form.get("networkCode") or "")[:MAX_FIELD],
        text=text,
        inputs=text.split("*") if text else [],
    )


def render(answer: UssdAnswer) -> tuple[str, str]:
    """The response body and its content type."""
    return ("END " if answer.end else "CON ") + answer.text, CONTENT_TYPE
