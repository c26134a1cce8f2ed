"""A generic ``CON``/``END`` USSD adapter for gateways that differ from Africa's Talking only in their
field names, such as the Kenyan GET-style gateways (Crossgate: ``session_id, msisdn, network_code,
ussd_string, service_code``; JazaAfrica: ``SESSIONID, USSDCODE, MSISDN, INPUT``).

Served at ``/ussd/generic`` (GET or POST). The field names come from ``ELIMU_GENERIC_USSD_FIELDS``,
e.g. ``session=SESSIONID,phone=MSISDN,text=INPUT,service=USSDCODE,network=NETWORK``; unset, the
Crossgate names are used. The text is the whole dialogue so far joined with ``*``, as with AT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from registry.identifiers import InvalidMsisdn, normalize_msisdn

from .messages import MAX_FIELD, BadUssdRequest, UssdAnswer, UssdRequest, ascii_digits, session_id_of

NAME = "generic"
ROLES = ("session", "phone", "text", "service", "network")
CROSSGATE = {"session": "session_id", "phone": "msisdn", "text": "ussd_string", "service": "service_code",
             "network": "network_code"}
CONTENT_TYPE = "text/plain; charset=utf-8"


def parse_fields(spec: str) -> dict[str, str]:
    """``role=name`` pairs -> a complete mapping (unnamed roles keep the Crossgate names)."""
    names = dict(CROSSGATE)
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        role, sep, name = part.partition("=")
        role, name = role.strip().lower(), name.strip()
        if not sep or role not in ROLES or not name:
            raise ValueError(f"ELIMU_GENERIC_USSD_FIELDS: expected role=name with role in {', '.join(ROLES)}, "
                             f"not {part!r}")
        names[role] = name
    return names


@dataclass(frozen=True)
class GenericAdapter:
    fields: Mapping[str, str]
    name: str = NAME

    def parse_hop(self, form: Mapping[str, str]) -> UssdRequest:
        f = self.fields
        session_id = session_id_of(form, f["session"])
        raw_phone = (form.get(f["phone"]) or "").strip()
        if not raw_phone:
            raise BadUssdRequest(f"{f['phone']} is required")
        try:
            phone: str | None = normalize_msisdn(raw_phone[:MAX_FIELD])
        except InvalidMsisdn:
            phone = None
        text = ascii_digits(form.get(f["text"]) or "")
        return UssdRequest(provider=NAME, session_id=session_id, phone=phone,
                           service_code=(form.get(f["service"]) or "")[:MAX_FIELD],
                           network=(form.get(f["network"]) or "")[:MAX_FIELD], text=text,
                           inputs=text.split("*") if text else [])

    @staticmethod
    def render(answer: UssdAnswer) -> tuple[str, str]:
        return ("END " if answer.end else "CON ") + answer.text, CONTENT_TYPE

