"""SMS backends: where outbound messages go (SMS_BACKEND): ``outbox`` (records, sends nothing) or
``africastalking`` (the AT SDK). A backend gets a batch of messages and answers one result per
message; it never raises for a provider or network failure, it classifies it."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gateway.runtime import Runtime


@dataclass(frozen=True)
class Outgoing:
    """One message to send, with its clear text (an OTP's code included)."""

    message_id: int
    recipient: str
    body: str
    kind: str
    link_id: str | None = None
    bulk: bool = False


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"  # the provider took it (awaiting a delivery report)
    DELIVERED = "delivered"  # final at once (the outbox backend)
    RETRY = "retry"  # not taken; worth trying again later (5xx, timeout, connection)
    # the request went out whole but its answer was lost (a read timeout, a dropped connection): the
    # provider may have taken it, so it is counted as taken and never sent again (premium replies,
    # which the subscriber pays for); a delivery report naming the phone confirms it
    UNCONFIRMED = "unconfirmed"
    FAILED = "failed"  # not taken and never will be (invalid number, blacklisted, ...)


@dataclass(frozen=True)
class SendResult:
    message_id: int
    outcome: Outcome
    provider_message_id: str | None = None
    status_code: int | None = None
    cost: str | None = None
    reason: str | None = None  # short, no personal data


class SendInterrupted(Exception):
    """``send`` was interrupted (a job timeout) while its requests were in flight: ``results``
    holds the answer of every message, ``RETRY`` for the ones never sent, so the caller records
    what the provider took instead of putting every row back to be sent again."""

    def __init__(self, results: list[SendResult]) -> None:
        super().__init__(f"send interrupted ({len(results)} messages)")
        self.results = results


class Backend(Protocol):
    name: str
    throttled: bool  # whether sends count against the provider's rate limit

    def send(self, messages: Sequence[Outgoing]) -> list[SendResult]:
        """One result per message, in any order."""


def build_backend(runtime: Runtime) -> Backend:
    settings = runtime.settings
    if settings.sms_backend == "africastalking":
        from ..context import throttle_of
        from .africastalking import AfricasTalkingBackend

        return AfricasTalkingBackend.from_settings(settings, throttle_of(runtime))
    from .outbox import OutboxBackend

    return OutboxBackend(runtime.redis, keep_inbox=settings.dev_mode)
