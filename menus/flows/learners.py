"""Get a learner's UPI (by SMS, after a code) and see a learner's status."""

from __future__ import annotations

from .. import layout
from ..engine import Context, Go, Outcome, Stop
from ..services import Enrolment, LearnerStatus, Purpose, SendResult
from .common import LearnerList, OtpEntry

SCHOOL_LIMITS = (60, 44, 36, 30, 24, 20, 16, 12)
MAX_EXAMS = 4
CODE_FOR = "code_for"  # the learner whose UPI code this session sent


def _pick_for_upi(ctx: Context, learner_id: int) -> Outcome:
    ctx.data["learner"] = learner_id
    sent = ctx.services.send_otp(ctx.phone, Purpose.UPI, learner_id, ctx.session_id)
    # ``0`` on the code screen goes back to the list the learner was picked from; with one learner
    # no list was shown (``LearnerList`` picks it at once), so it goes where the caller came from
    push = len(ctx.data.get("choices", [])) > 1
    if sent is SendResult.TOO_SOON and ctx.data.get(CODE_FOR) == learner_id:
        # back on the list and the same learner again within the minute: the code this session
        # sent for it is still good (a used one ended the session with the UPI)
        return Go("upi.otp", push=push, note=ctx.t("otp.sent_recently"))
    if sent is SendResult.TOO_SOON:
        return Stop(ctx.t("otp.wait"))
    if sent is SendResult.LIMIT:
        return Stop(ctx.t("otp.limit"))
    ctx.data[CODE_FOR] = learner_id
    return Go("upi.otp", push=push)


def _send_upi(ctx: Context) -> Outcome:
    learner_id = int(ctx.data["learner"])
    labels = {int(i): label for i, label in ctx.data.get("choices", [])}
    if not ctx.services.send_upi(ctx.phone, learner_id, ctx.session_id):
        return Stop(ctx.t("learners.gone"))
    name = labels.get(learner_id, "").split(" (")[0]
    return Stop(ctx.t("upi.done", name=name))


def status_text(ctx: Context, status: LearnerStatus) -> str:
    """The status screen, with school names shortened until it fits."""
    exams = ", ".join(status.released_results[:MAX_EXAMS])
    results = ctx.t("status.results", exams=exams) if exams else ctx.t("status.no_results")
    name = f"{layout.short_person(status.masked_name)} ({layout.shorten(status.grade, 10)})"
    body = ""
    for limit in SCHOOL_LIMITS:
        school = layout.shorten(status.school, limit)
        other = layout.shorten(status.other_school or "", limit)
        if status.enrolment is Enrolment.REQUESTED:
            state = ctx.t("status.state.requested", school=other)
        elif status.enrolment is Enrolment.RELEASED and other:
            state = ctx.t("status.state.released", school=other)
        elif status.enrolment is Enrolment.RELEASED:
            state = ctx.t("status.state.released_open")
        elif status.enrolment is Enrolment.ADMITTED and status.admitted_on:
            state = ctx.t("status.state.admitted", date=status.admitted_on.strftime("%d/%m/%Y"))
        else:
            state = ctx.t("status.state.enrolled")
        body = layout.compose([name, school, state, results])
        if layout.fits(body):
            return body
    return body


def _show_status(ctx: Context, learner_id: int) -> Outcome:
    status = ctx.services.learner_status(ctx.phone, learner_id, ctx.session_id)
    if status is None:
        return Stop(ctx.t("learners.gone"))
    return Stop(status_text(ctx, status))


SCREENS = (
    LearnerList("upi.pick", _pick_for_upi),
    OtpEntry("upi.otp", Purpose.UPI, _send_upi),
    LearnerList("status.pick", _show_status),
)
