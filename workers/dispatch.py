"""After a transaction commits, its outbox rows become RQ jobs (``gateway.runtime`` installs this)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from registry.db import Dispatcher, PendingMessage

from .context import queues_of
from .queues import SendJob

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger(__name__)


def make_dispatcher(runtime: Runtime) -> Dispatcher:
    """Enqueue one job per committed message on its priority's queue, job id from the message id.

    A Redis failure here loses no message: the rows stay ``queued`` in the database and the
    reconciler enqueues them (an OTP whose clear text was only in this call expires instead).
    """

    def dispatch(pending: Sequence[PendingMessage]) -> None:
        try:
            queues_of(runtime).enqueue_sends(SendJob(p.message_id, p.priority, p.clear_body) for p in pending)
        except Exception as exc:  # noqa: BLE001 - the commit stands; the reconciler catches up
            log.warning("could not enqueue %d SMS (%s); the reconciler will", len(pending), type(exc).__name__)

    return dispatch
