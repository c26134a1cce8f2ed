"""SMS commands: ``elimu worker``, ``elimu sms reconcile``, ``elimu announce``, ``elimu messages``."""

from __future__ import annotations

import json
from datetime import UTC

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from registry import gsm
from registry.db import take_pending
from registry.identifiers import InvalidMsisdn, normalize_msisdn
from registry.levels import InvalidGrade, normalize_school_grade
from registry.models import MessageKind, OutboundMessage
from registry.services.announcements import UnknownInstitution, announce, find_institution, opted_out_count

from ..logs import configure_logging
from ..runtime import Runtime
from . import Context, pass_context

MAX_ANNOUNCEMENT_SEGMENTS = 5
DISPATCH_CHUNK = 500


def _work_here_if_embedded(runtime: Runtime) -> None:
    """With the embedded Redis this process's queue dies with it: send what it queued now."""
    if runtime.settings.embedded_redis:
        from workers.worker import run_worker

        run_worker(runtime, burst=True, logging_level="WARNING")


@click.command("worker")
@click.option("--burst", is_flag=True, help="stop when the queues are empty")
@click.option("--no-bulk", "no_bulk", is_flag=True,
              help="leave bulk notices to the other workers (OTPs never wait behind a batch of them)")
@click.option("--metrics-port", type=click.IntRange(1, 65535), envvar="ELIMU_WORKER_METRICS_PORT",
              help="serve this worker's Prometheus metrics (SMS sent, failed, retried; inbound commands) "
                   "at http://HOST:PORT/metrics")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, metavar="HOST",
              help="address the metrics listen on")
@pass_context
def worker(ctx: Context, burst: bool, no_bulk: bool, metrics_port: int | None, metrics_host: str) -> None:
    """Run an SMS worker on REDIS_URL: OTPs first, then replies, inbound texts, bulk notices.

    Run one per core; each also moves due retries onto the queues and runs the reconciler. While
    announcements drain, a worker finishes the batch in hand (up to 100 messages) before it takes
    the next OTP: run one more with --no-bulk so codes go out at once. What a worker counts (SMS
    by kind and status, inbound commands) is on its own --metrics-port, not on the web's /metrics.
    """
    settings = ctx.settings
    if settings.embedded_redis:
        raise click.ClickException(
            "REDIS_URL is not set: in embedded mode `elimu serve` runs the SMS worker in its own process"
        )
    configure_logging(settings.log_format)
    if metrics_port is not None:
        serve_worker_metrics(metrics_host, metrics_port)
    from workers.worker import run_worker

    run_worker(ctx.runtime, burst=burst, bulk=not no_bulk)


def serve_worker_metrics(host: str, port: int) -> None:
    """This process's metrics over HTTP, from a daemon thread (a worker's counters live in the
    worker process: the web's ``/metrics`` cannot see them)."""
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise click.ClickException(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None


@click.group("sms")
def sms_group() -> None:
    """The SMS pipeline."""


@sms_group.command("reconcile")
@pass_context
def reconcile_command(ctx: Context) -> None:
    """Enqueue again what Redis lost: queued messages without a job, sends cut off mid-way,
    unanswered inbound texts (OTPs whose code was lost expire)."""
    from workers.reconcile import reconcile

    report = reconcile(ctx.runtime)
    click.echo(str(report))
    _work_here_if_embedded(ctx.runtime)


@click.command("announce")
@click.option("--institution", "code", required=True, metavar="CODE", help="the school's institution code")
@click.option("--grade", default=None, metavar="GRADE", help="only guardians of learners in this grade")
@click.option("--message", required=True, metavar="TEXT", help="the announcement text")
@pass_context
def announce_command(ctx: Context, code: str, grade: str | None, message: str) -> None:
    """Send an announcement to every guardian of a school's learners (one SMS per phone; phones
    that sent STOP are left out)."""
    text = message.strip()
    if not text:
        raise click.BadParameter("the message is empty", param_hint="--message")
    if grade is not None:  # "grade 4", "GRADE4": as the import spells it; a typo is refused, not sent to none
        try:
            grade = normalize_school_grade(grade)
        except InvalidGrade as exc:
            raise click.BadParameter(str(exc), param_hint="--grade") from None
    if gsm.segments(text) > MAX_ANNOUNCEMENT_SEGMENTS:
        raise click.BadParameter(
            f"the message takes {gsm.segments(text)} SMS segments; keep it within {MAX_ANNOUNCEMENT_SEGMENTS}",
            param_hint="--message",
        )
    runtime = ctx.runtime
    console = Console(stderr=True)
    with _progress(console) as progress, runtime.db.transaction() as session:
        try:
            institution = find_institution(session, code)
        except UnknownInstitution as exc:
            raise click.ClickException(str(exc)) from None
        task = progress.add_task("writing", total=None) if progress else None

        def advance(done: int, total: int) -> None:
            if progress is not None and task is not None:
                progress.update(task, completed=done, total=total)

        announcement = announce(session, institution, text, grade=grade, progress=advance)
        skipped = opted_out_count(session, institution.id, grade)
        pending = take_pending(session)
        summary = (announcement.id, announcement.recipients, announcement.body, institution.code)
    _dispatch(runtime, pending, console)
    announcement_id, recipients, body, institution_code = summary
    where = f"{institution_code}{f' {grade}' if grade else ''}"
    click.echo(
        f"announcement {announcement_id} to {where}: {recipients} recipient(s) queued, {skipped} left out "
        f"(sent STOP); {gsm.segments(body)} SMS segment(s) each ({gsm.encoding(body).upper()})"
    )
    _work_here_if_embedded(runtime)


def _progress(console: Console) -> Progress:
    """A progress bar on a terminal; a silent stand-in otherwise."""
    if not console.is_terminal:
        return _NoProgress()  # type: ignore[return-value]
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console)


class _NoProgress:
    def __enter__(self):
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _dispatch(runtime: Runtime, pending: list, console: Console) -> None:
    """Hand the committed rows to the bulk queue, a chunk at a time, with progress."""
    if not pending or runtime.db.dispatch is None:
        return
    with _progress(console) as progress:
        task = progress.add_task("queueing", total=len(pending)) if progress else None
        for start in range(0, len(pending), DISPATCH_CHUNK):
            runtime.db.dispatch(pending[start:start + DISPATCH_CHUNK])
            if progress is not None and task is not None:
                progress.update(task, advance=len(pending[start:start + DISPATCH_CHUNK]))


@click.command("messages")
@click.option("--to", "recipient", default=None, metavar="MSISDN", help="only messages to this phone")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@click.option("--json", "as_json", is_flag=True, help="one JSON array")
@pass_context
def messages(ctx: Context, recipient: str | None, limit: int, as_json: bool) -> None:
    """Recent outbound messages, newest first (one-time codes are never shown)."""
    if recipient:
        try:
            recipient = normalize_msisdn(recipient)
        except InvalidMsisdn as exc:
            raise click.BadParameter(str(exc), param_hint="--to") from None
    query = select(OutboundMessage).order_by(OutboundMessage.id.desc()).limit(limit)
    if recipient:
        query = query.where(OutboundMessage.recipient == recipient)
    with ctx.runtime.db.session() as session:
        rows = list(session.scalars(query))
    if as_json:
        click.echo(json.dumps([_record(row) for row in rows]))
        return
    if not rows:
        click.echo("no messages")
        return
    table = Table("id", "to", "kind", "status", "created", "text", "reason")
    for row in rows:
        record = _record(row)
        # a body or reason is shown as it is, never read as Rich markup ("[/]" in a reason from a
        # delivery report would end the command with an error, "[link=...]" would make a link)
        table.add_row(str(record["id"]), str(record["to"]), str(record["kind"]), str(record["status"]),
                      str(record["created_at"])[:19], Text(_shown_body(row)), Text(row.failure_reason or ""))
    console = Console()
    if not console.is_terminal:  # piped: do not wrap to 80 columns
        console = Console(width=200)
    console.print(table)


def _record(row: OutboundMessage) -> dict[str, object]:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return {
        "id": row.id,
        "to": row.recipient,
        "kind": str(row.kind),
        "status": str(row.status),
        "provider_message_id": row.provider_message_id,
        "created_at": created.astimezone(UTC).isoformat(),
    }


def _shown_body(row: OutboundMessage) -> str:
    if row.kind == MessageKind.OTP:
        return "(one-time code, not shown)"
    body = " ".join(row.body.split())
    return body if len(body) <= 60 else body[:57] + "..."


commands = [worker, sms_group, announce_command, messages]
