"""RQ job entry points (RQ imports them by path; keep these names stable)."""

from __future__ import annotations

from .context import current_runtime
from .sending import RetryableSendError, deliver, schedule_retries


def send_message(message_id: int, clear_body: str | None = None) -> None:
    """Send one outbox message (a bulk one takes along a batch of its announcement's queued rows).

    A message that is no longer ``queued`` (already accepted, failed, or held by another worker)
    is skipped, so a duplicate job is harmless. A retryable failure of this message raises, and
    RQ's ``Retry`` runs the job again after a growing interval; other rows of a failed batch get
    jobs of their own after the same interval.
    """
    runtime = current_runtime()
    summary = deliver(runtime, [message_id], {message_id: clear_body} if clear_body is not None else None)
    schedule_retries(runtime, summary.retries, skip=message_id)
    own = summary.retry_of(message_id)
    if own is not None:
        raise RetryableSendError(f"message {message_id}: {own.reason}")


def handle_inbound(slot: int) -> None:
    """Drain the inbound-SMS hand-over list (see ``workers.inbound``)."""
    from .inbound import drain

    drain(current_runtime(), slot)


def wake() -> None:
    """A no-op job: wakes a waiting worker so it notices it was asked to stop."""
