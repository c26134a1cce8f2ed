"""``elimu audit`` (who saw which learner's data) and ``elimu purge`` (storage limitation)."""

from __future__ import annotations

import json
from datetime import timedelta

import click

from registry.identifiers import InvalidMsisdn, normalize_msisdn
from registry.services.audit import history
from registry.services.retention import purge

from . import Context, pass_context


@click.command("audit")
@click.option("--learner", "upi", metavar="UPI", help="disclosures of this learner's data")
@click.option("--phone", metavar="MSISDN", help="disclosures to this phone")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 100000))
@click.option("--json", "as_json", is_flag=True, help="one JSON array")
@pass_context
def audit(ctx: Context, upi: str | None, phone: str | None, limit: int, as_json: bool) -> None:
    """Show the disclosure audit trail, newest first."""
    if not upi and not phone:
        raise click.UsageError("give --learner UPI or --phone MSISDN")
    if phone:
        try:
            phone = normalize_msisdn(phone)
        except InvalidMsisdn as exc:
            raise click.BadParameter(str(exc), param_hint="--phone") from None
    with ctx.runtime.db.session() as session:
        rows = history(session, upi=upi, phone=phone, limit=limit)
    records = [
        {
            "at": event.at.isoformat(),
            "phone": event.phone,
            "learner": learner_upi,
            "action": event.action,
            "channel": event.channel,
            "reference": event.reference,
        }
        for event, learner_upi in rows
    ]
    if as_json:
        click.echo(json.dumps(records))
        return
    if not records:
        click.echo("no disclosures recorded")
        return
    for r in records:
        click.echo(f"{r['at']}  {r['phone']}  {r['learner'] or '-':<10} {r['action']:<18} {r['channel']:<5} "
                   f"{r['reference'] or ''}")


@click.command("purge")
@click.option("--older-than", "days", default=90, show_default=True, type=click.IntRange(1, 3650),
              help="age in days", envvar="ELIMU_RETENTION_DAYS")
@pass_context
def purge_command(ctx: Context, days: int) -> None:
    """Remove USSD session events and message bodies older than the retention age."""
    with ctx.runtime.db.transaction() as session:
        counts = purge(session, timedelta(days=days))
    click.echo(
        f"purged: {counts.session_events} session events, {counts.outbound_bodies} outbound bodies, "
        f"{counts.inbound_texts} inbound texts, {counts.one_time_codes} one-time codes (older than {days} days)"
    )


commands = [audit, purge_command]
