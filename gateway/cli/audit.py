"""``elimu audit`` (who saw which learner's data) and ``elimu purge`` (storage limitation)."""

from __future__ import annotations

import json
from datetime import timedelta

import click
from sqlalchemy import select

from registry.exams import InvalidExamData, exam_named
from registry.identifiers import InvalidMsisdn, normalize_msisdn
from registry.models import Learner
from registry.services.audit import history
from registry.services.notices import NOTICE_ACTION
from registry.services.retention import RECORDS_DAYS, purge
from registry.services.withdrawals import withdrawn_notices

from ..sms.africastalking import BadCallback, sender_number
from . import Context, pass_context
from .times import iso_utc


@click.command("audit")
@click.option("--learner", "upi", metavar="UPI", help="disclosures of this learner's data")
@click.option("--phone", metavar="MSISDN",
              help="disclosures to this phone, its checks failed and refused, its PINs chosen (any E.164 number: "
                   "results go abroad too)")
@click.option("--index", "index_number", metavar="NUMBER",
              help="results sent of this index or assessment number, and results requests refused at it")
@click.option("--series", nargs=2, metavar="EXAM YEAR", default=None,
              help="results sent of this exam series, e.g. --series KCSE 2025")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 100000))
@click.option("--json", "as_json", is_flag=True, help="one JSON array")
@pass_context
def audit(ctx: Context, upi: str | None, phone: str | None, index_number: str | None,
          series: tuple[str, str] | None, limit: int, as_json: bool) -> None:
    """Show the audit trail, newest first: every disclosure of a learner's data, each failed
    activation or PIN-reset check (`activation_miss`), each results SMS refused (`results_miss`:
    names that matched no candidate; `results_refused`: no name checked), each PIN chosen on USSD
    (`pin_chosen`) or not judged past the phone's 12 a day (`pin_choice_limit`), and each PIN
    changed (`pin_changed`) or reset (`pin_reset`). A message naming a learner withdrawn before it
    was sent is `disclosure_withdrawn` (its ref the message id), and a transfer notice it was is
    marked withdrawn. --phone lists them all; --index the results
    sent and refused at that number; --learner and --series what was disclosed. Given several of
    --learner, --phone, --index and --series, it lists the rows matching any of them."""
    if not upi and not phone and not index_number and not series:
        raise click.UsageError("give --learner UPI, --phone MSISDN, --index NUMBER or --series EXAM YEAR")
    if phone:
        phone = audited_phone(phone)
    exam_series = _series(series) if series else None
    with ctx.runtime.db.session() as session:
        if upi and session.scalar(select(Learner.id).where(Learner.upi == upi.strip().upper()).limit(1)) is None:
            # "no disclosures recorded" would answer an access request about a mistyped UPI
            raise click.ClickException(f"no learner has UPI {upi.strip().upper()!r}: check it (a candidate's "
                                       "results sent are found by --index NUMBER too)")
        rows = history(session, upi=upi, phone=phone, index_number=index_number, series=exam_series, limit=limit)
        withdrawn = withdrawn_notices(session, [event for event, _ in rows])
    records = [
        {
            "at": iso_utc(event.at),  # with its zone on SQLite too
            "phone": event.phone,
            "learner": learner_upi,
            "action": event.action,
            "channel": event.channel,
            "reference": event.reference,
            "detail": event.detail,
            # a disclosure recorded when its message was queued, which was then withdrawn unsent
            "withdrawn": event.action == NOTICE_ACTION and (event.phone, event.reference) in withdrawn,
        }
        for event, learner_upi in rows
    ]
    if as_json:
        click.echo(json.dumps(records))
        return
    if not records:
        click.echo("nothing recorded" if index_number or phone else "no disclosures recorded")
        return
    click.echo(f"{'at (UTC)':<32}  {'phone':<13}  {'learner':<10} {'action':<18} {'via':<5} {'ref':<8} detail")
    for r in records:
        click.echo(f"{r['at']:<32}  {r['phone']:<13}  {r['learner'] or '-':<10} {r['action']:<18} {r['channel']:<5} "
                   f"{r['reference'] or '':<8} {r['detail'] or ''}".rstrip()
                   + (" (withdrawn: never sent, see disclosure_withdrawn)" if r["withdrawn"] else ""))


def _series(raw: tuple[str, str]) -> tuple[str, int]:
    """``("kcse", "2025")`` as the audit trail names it: ``("KCSE", 2025)``."""
    exam, year = raw
    try:
        name = exam_named(exam).name
    except InvalidExamData as exc:
        raise click.BadParameter(str(exc), param_hint="--series") from None
    if not (year.isascii() and year.isdigit() and len(year) == 4):
        raise click.BadParameter(f"year must be four digits (YYYY), not {year!r}", param_hint="--series")
    return name, int(year)


def audited_phone(raw: str, param_hint: str = "--phone") -> str:
    """A phone as the audit trail holds it: Kenyan numbers as E.164, and any other E.164 number as
    an inbound SMS's sender is stored (results are sent abroad too)."""
    try:
        return normalize_msisdn(raw)
    except InvalidMsisdn as exc:
        try:
            return sender_number(raw)
        except BadCallback:  # the reason and the Kenyan forms, and the one other form taken here
            raise click.BadParameter(f"{exc}, or another country's in E.164 (+ and its country code)",
                                     param_hint=param_hint) from None


@click.command("purge")
@click.option("--older-than", "days", default=90, show_default=True, type=click.IntRange(1, 3650),
              help="age in days of the texts and session events removed", envvar="ELIMU_RETENTION_DAYS",
              show_envvar=True)
@click.option("--records-older-than", "records_days", default=RECORDS_DAYS, show_default=True,
              type=click.IntRange(1, 36500), envvar="ELIMU_RECORDS_RETENTION_DAYS", show_envvar=True,
              help="age in days of the audit rows and message rows removed, and of the guardian rows with no "
                   "learner and phone settings with no contact for so long (not less than --older-than)")
@pass_context
def purge_command(ctx: Context, days: int, records_days: int) -> None:
    """Remove USSD session events and message texts older than the retention age, and the audit
    trail and message rows (billing records) older than the records' age; also the guardian rows
    linked to no learner, and the settings of phones not in touch, for the records' age (a STOP
    is kept, its language reset)."""
    if records_days < days:
        raise click.BadParameter(f"{records_days} is less than --older-than ({days}): the records outlive the texts",
                                 param_hint="'--records-older-than' / ELIMU_RECORDS_RETENTION_DAYS")
    with ctx.runtime.db.transaction() as session:
        counts = purge(session, timedelta(days=days), timedelta(days=records_days))
    click.echo(
        f"purged: {counts.session_events} session events, {counts.outbound_bodies} outbound bodies, "
        f"{counts.inbound_texts} inbound texts, {counts.announcement_texts} announcement texts, "
        f"{counts.one_time_codes} one-time codes (older than {days} days); "
        f"{counts.audit_rows} audit rows, {counts.outbound_rows} outbound and {counts.inbound_rows} inbound "
        f"message rows (older than {records_days} days); {counts.guardian_rows} guardians with no learner, "
        f"{counts.phone_settings} phone settings (idle for {records_days} days)"
    )


commands = [audit, purge_command]
