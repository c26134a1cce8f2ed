"""Get a learner's UPI (by SMS, after a code) and see a learner's status."""

from __future__ import annotations

from .. import layout
from ..engine import BACK, HOME, Context, Go, Home, Outcome, Retry, Screen, Stop, View
from ..services import Enrolment, LearnerStatus, Purpose, SendResult
from .common import LearnerList, OtpEntry

SCHOOL_LIMITS = (60, 44, 36, 30, 24, 20, 16, 12)
MAX_EXAMS = 4
SHOWN = "status_shown"  # the status text on the status screen (several learners)


def _pick_for_upi(ctx: Context, learner_id: int) -> Outcome:
    ctx.data["learner"] = learner_id
    sent = ctx.services.send_otp(ctx.phone, Purpose.UPI, learner_id, ctx.session_id)
    # ``0`` on the code screen goes back to the list the learner was picked from; with one learner
    # no list was shown (``LearnerList`` picks it at once), so it goes where the caller came from
    push = len(ctx.data.get("choices", [])) > 1
    if sent is SendResult.STILL_GOOD:
        # the same learner again within the minute (back on the list, or in a new session after a
        # dropped one): the code sent for it is still good, says the registry, which knows of it
        return Go("upi.otp", push=push, note=ctx.t("otp.sent_recently"))
    if sent is SendResult.TOO_SOON:
        return Stop(ctx.t("otp.wait"))
    if sent is SendResult.LIMIT:
        return Stop(ctx.t("otp.limit"))
    return Go("upi.otp", push=push)


def _send_upi(ctx: Context) -> Outcome:
    learner_id = int(ctx.data["learner"])
    labels = {int(i): label for i, label in ctx.data.get("choices", [])}
    if not ctx.services.send_upi(ctx.phone, learner_id, ctx.session_id):
        return Stop(ctx.t("learners.gone"))
    name = labels.get(learner_id, "").split(" (")[0]
    return Stop(ctx.t("upi.done", name=name))


def status_text(ctx: Context, status: LearnerStatus, budget: int = layout.BODY_LIMIT) -> str:
    """The status screen within ``budget`` characters: school names shortened until it fits, then,
    if still too long, the oldest results left out."""
    body = ""
    for count in range(MAX_EXAMS, 0, -1):
        body = _status_body(ctx, status, count, budget)
        if len(body) <= budget or len(status.released_results) <= count:
            return body
    return body


def _status_body(ctx: Context, status: LearnerStatus, exam_count: int, budget: int) -> str:
    exams = ", ".join(status.released_results[:exam_count])
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
        if len(body) <= budget:
            return body
    return body


def _show_status(ctx: Context, learner_id: int) -> Outcome:
    """One learner: the status ends the session. Several: it stays open with ``0`` back to the list
    (the page it was picked from) for the next learner, without dialling and the PIN again."""
    status = ctx.services.learner_status(ctx.phone, learner_id, ctx.session_id)
    if status is None:
        return Stop(ctx.t("learners.gone"))
    if len(ctx.data.get("choices", [])) <= 1:
        return Stop(status_text(ctx, status))
    nav = layout.compose(layout.options_block([(BACK, ctx.t("nav.back")), (HOME, ctx.t("nav.home"))]))
    ctx.data[SHOWN] = status_text(ctx, status, layout.BODY_LIMIT - len(nav) - 1)
    return Go("status.show")


class StatusShown(Screen):
    """A learner's status for a parent of several: only ``0`` (the list) and ``00`` lead on. The
    text is the one shown on the pick (audited then), kept only while this screen is."""

    name = "status.show"

    def enter(self, ctx: Context) -> Outcome | None:
        return None if ctx.data.get(SHOWN) else Home()

    def back(self, ctx: Context) -> Outcome | None:
        ctx.data.pop(SHOWN, None)
        return None

    def render(self, ctx: Context) -> View:
        return View(lines=(ctx.data.get(SHOWN, ""),))

    def handle(self, ctx: Context, value: str) -> Outcome:
        return Retry("")  # no options: the same screen (no room for a hint), three of these end it


SCREENS = (
    LearnerList("upi.pick", _pick_for_upi),
    OtpEntry("upi.otp", Purpose.UPI, _send_upi),
    LearnerList("status.pick", _show_status),
    StatusShown(),
)
