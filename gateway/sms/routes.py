"""SMS callbacks: ``POST /sms/africastalking/inbound``, ``/delivery`` and ``/optout``.

Each answers at once: an inbound message is stored and handed to the workers (the reply leaves as
an SMS); a delivery report is one conditional UPDATE; an opt-out is a STOP from that phone. Provider tokens and source networks are
checked for every ``/sms/`` path by ``gateway.security``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Blueprint, Response, current_app, request

from registry.models import utcnow
from registry.services.sms_delivery import ReportOutcome
from registry.services.sms_replies import set_opted_out
from workers.inbound import receive
from workers.reports import apply as apply_report

from ..metrics import CALLBACKS_REFUSED, DELIVERY_REPORTS
from ..plain import plain
from ..runtime import Runtime
from .africastalking import DELIVERY_STATUS, BadCallback, parse_delivery, parse_inbound, parse_optout

log = logging.getLogger(__name__)
bp = Blueprint("sms", __name__)


def _runtime() -> Runtime:
    return current_app.extensions["elimu"]


def answer_inbound(runtime: Runtime, form: Mapping[str, str]) -> tuple[int, str]:
    """Store (once per AT id) and hand over: 200 at once, also for a repeat (no second reply); 400
    with the reason for a malformed callback. The Flask view below and ``gateway.fastpath`` both
    answer with this."""
    try:
        sms = parse_inbound(form)
    except BadCallback as exc:
        CALLBACKS_REFUSED.labels("malformed").inc()
        return 400, f"{exc}\n"
    message_id = receive(
        runtime, provider_id=sms.provider_id, sender=sms.sender, text=sms.text, short_code=sms.short_code,
        link_id=sms.link_id, network_code=sms.network_code, received_at=sms.received_at,
    )
    if message_id is None:
        log.info("inbound SMS %s is a repeat; already answered or queued", sms.provider_id)
        return 200, "OK (repeat)\n"
    return 200, "OK\n"


@bp.post("/sms/africastalking/inbound")
def inbound() -> Response:
    status, body = answer_inbound(_runtime(), request.form)
    return plain(body, status)


@bp.post("/sms/africastalking/delivery")
def delivery() -> Response:
    """Apply a delivery report (idempotent, never backwards); 200 also for an unknown id."""
    try:
        report = parse_delivery(request.form)
    except BadCallback as exc:
        CALLBACKS_REFUSED.labels("malformed").inc()
        return plain(f"{exc}\n", 400)
    DELIVERY_REPORTS.labels(report.raw_status if report.raw_status in DELIVERY_STATUS else "other").inc()
    if report.status is None:
        log.warning("delivery report %s has an undocumented status; ignored", report.provider_message_id)
        return plain("OK (status not known)\n")
    outcome = apply_report(_runtime(), report.provider_message_id, report.status, report.failure_reason,
                           report.phone, utcnow())
    if outcome is ReportOutcome.UNKNOWN:
        log.info("delivery report for unknown message id %s", report.provider_message_id)
    return plain(f"OK ({outcome.value})\n")


@bp.post("/sms/africastalking/optout")
def optout() -> Response:
    """A subscriber blocked our sender ID at the network (AT's opt-out callback): the phone gets no
    more announcements, as after ``STOP``; ``START`` by SMS turns them on again."""
    try:
        opt_out = parse_optout(request.form)
    except BadCallback as exc:
        CALLBACKS_REFUSED.labels("malformed").inc()
        return plain(f"{exc}\n", 400)
    with _runtime().db.transaction() as session:
        set_opted_out(session, opt_out.phone, True)
    log.info("opt-out from the network for sender id %s", opt_out.sender_id or "(none)")
    return plain("OK\n")
