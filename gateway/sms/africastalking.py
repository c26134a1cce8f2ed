"""Africa's Talking SMS callbacks, wire to plain objects (AT-PROTOCOL.md §2).

The callbacks are form-encoded POSTs with AT's field names. Inbound: ``from``, ``to``, ``text``,
``date``, ``id``, optional ``linkId``, ``networkCode``. Delivery report: ``id`` (our send's
``messageId``), ``status``, ``phoneNumber``, ``networkCode``, optional ``failureReason``, ``retryCount``.
Opt-out (a subscriber who blocked our sender ID through the network's menu): ``senderId``, ``phoneNumber``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from registry.identifiers import InvalidMsisdn, normalize_msisdn
from registry.models import MessageStatus

NAME = "africastalking"
MAX_TEXT = 1600
_E164 = re.compile(r"\+[0-9]{7,15}")

# AT delivery statuses (§2): Success is on the handset; Sent/Submitted/Buffered are on their way,
# and so is AbsentSubscriber (the SIM is unreachable for now: the network keeps trying, and a later
# Success must still count); Rejected and Failed are final; Expired is the network giving up.
DELIVERY_STATUS: dict[str, MessageStatus] = {
    "Success": MessageStatus.DELIVERED,
    "Sent": MessageStatus.SENT,
    "Submitted": MessageStatus.SENT,
    "Buffered": MessageStatus.SENT,
    "AbsentSubscriber": MessageStatus.SENT,
    "Rejected": MessageStatus.REJECTED,
    "Failed": MessageStatus.FAILED,
    "Expired": MessageStatus.EXPIRED,
}
_STATUS_AS_REASON = frozenset({"AbsentSubscriber", "Expired"})  # the status says why; kept as the reason
FAILURE_REASONS = frozenset({
    "InsufficientCredit", "InvalidLinkId", "UserIsInactive", "UserInBlackList", "UserAccountSuspended",
    "NotNetworkSubcriber", "UserNotSubscribedToProduct", "UserDoesNotExist", "DeliveryFailure",
    "DoNotDisturbRejection",
})


class BadCallback(ValueError):
    """A callback we cannot use; the message is the one-line reason answered with 400."""


@dataclass(frozen=True)
class InboundSms:
    provider_id: str
    sender: str  # E.164
    text: str
    short_code: str | None = None
    link_id: str | None = None
    network_code: str | None = None
    received_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryReport:
    provider_message_id: str
    raw_status: str
    status: MessageStatus | None  # None: a status AT has not documented
    failure_reason: str | None = None
    phone: str | None = None  # ``phoneNumber`` as E.164, when it reads as one


@dataclass(frozen=True)
class OptOut:
    phone: str  # E.164
    sender_id: str | None = None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # terminal escapes and the like: never stored


def _field(form: Mapping[str, str], name: str, limit: int) -> str | None:
    value = _CONTROL.sub("", (form.get(name) or "")).strip()
    return value[:limit] or None


def _missing(form: Mapping[str, str], names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in form]
    if missing:
        raise BadCallback(f"missing field{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")


def sender_number(raw: str) -> str:
    """The sender as E.164: Kenyan numbers normalised, other E.164 numbers kept."""
    try:
        return normalize_msisdn(raw)
    except InvalidMsisdn:
        candidate = raw.strip().replace(" ", "")
        if _E164.fullmatch(candidate):
            return candidate
        raise BadCallback("from is not a phone number") from None


def _date(raw: str | None) -> datetime | None:
    if not raw:
        return None
    # ISO first: it reads AT's "yyyy-MM-dd HH:mm:ss" 30 times faster than strptime, which stays for
    # the unpadded forms ("2026-1-9 8:05:00") only it accepts
    for parse in (datetime.fromisoformat, lambda v: datetime.strptime(v, "%Y-%m-%d %H:%M:%S")):
        try:
            value = parse(raw.strip())
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
            continue
    return None


def parse_inbound(form: Mapping[str, str]) -> InboundSms:
    _missing(form, ("from", "id", "text"))
    provider_id = _CONTROL.sub("", form.get("id") or "").strip()
    if not provider_id:
        raise BadCallback("id is empty")
    if len(provider_id) > 100:
        raise BadCallback("id is longer than 100 characters")
    return InboundSms(
        provider_id=provider_id,
        sender=sender_number(form.get("from") or ""),
        text=(form.get("text") or "").replace("\x00", "")[:MAX_TEXT],  # a NUL: no database stores one
        short_code=_field(form, "to", 32),
        link_id=_field(form, "linkId", 100),
        network_code=_field(form, "networkCode", 16),
        received_at=_date(form.get("date")),
    )


def parse_delivery(form: Mapping[str, str]) -> DeliveryReport:
    _missing(form, ("id", "status"))
    provider_message_id = _CONTROL.sub("", form.get("id") or "").strip()
    if not provider_message_id or len(provider_message_id) > 100:
        raise BadCallback("id is empty or longer than 100 characters")
    raw_status = (form.get("status") or "").strip()[:40]
    status = DELIVERY_STATUS.get(raw_status)
    reason = _field(form, "failureReason", 100)
    if reason is None and (raw_status in _STATUS_AS_REASON or status is MessageStatus.REJECTED):
        reason = raw_status
    try:
        phone = sender_number(form.get("phoneNumber") or "")
    except BadCallback:
        phone = None  # only used to match a message whose send answer was lost
    return DeliveryReport(provider_message_id, raw_status, status, reason, phone)


def parse_optout(form: Mapping[str, str]) -> OptOut:
    _missing(form, ("phoneNumber",))
    try:
        phone = sender_number(form.get("phoneNumber") or "")
    except BadCallback:
        raise BadCallback("phoneNumber is not a phone number") from None
    return OptOut(phone, _field(form, "senderId", 32))
