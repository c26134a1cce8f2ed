"""SMS commands: ``elimu worker``, ``elimu sms reconcile``, ``elimu sms status``,
``elimu sms cancel-announcement``, ``elimu announce``, ``elimu messages``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import click
import redis.exceptions as redis_errors
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from registry import gsm
from registry.db import take_pending
from registry.levels import InvalidGrade, normalize_school_grade
from registry.models import MessageKind, MessageStatus, OutboundMessage, utcnow
from registry.services.announcements import (
    RepeatedAnnouncement,
    UnknownAnnouncement,
    UnknownInstitution,
    announce,
    announcement_counts,
    cancel_announcement,
    cancellable_count,
    find_announcement,
    find_institution,
    opted_out_count,
    prefer_gsm7,
)
from registry.services.sms_status import PipelineStatus, pipeline_status

from ..logs import configure_logging
from ..runtime import Runtime
from . import Context, pass_context
from .audit import audited_phone
from .errors import DatabaseFailure
from .times import as_utc, iso_utc

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
@click.option("--metrics-port", type=click.IntRange(1, 65535), envvar="ELIMU_WORKER_METRICS_PORT", show_envvar=True,
              help="serve this worker's Prometheus metrics (SMS sent, failed, retried and why; inbound "
                   "commands, results answered and refused; the reconciler) "
                   "at http://HOST:PORT/metrics")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, metavar="HOST",
              help="address the metrics listen on")
@pass_context
def worker(ctx: Context, burst: bool, no_bulk: bool, metrics_port: int | None, metrics_host: str) -> None:
    """Run an SMS worker on REDIS_URL: OTPs first, then replies, inbound texts, bulk notices.

    Run one per core; each also moves due retries onto the queues and runs the reconciler. While
    announcements drain, a worker finishes the batch in hand (up to 100 messages) before it takes
    the next OTP: run one more with --no-bulk so codes go out at once. What a worker counts (SMS
    by kind and status and why not taken, inbound commands, results answered and refused, the
    reconciler) is on its own --metrics-port, not on the web's /metrics.
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


@sms_group.command("status")
@click.option("--hours", default=24, show_default=True, type=click.IntRange(1, 24 * 90),
              help="count the messages made in this many hours")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@pass_context
def status_command(ctx: Context, hours: int, as_json: bool) -> None:
    """Where the pipeline stands: messages by kind and status, what still waits and since when,
    unanswered inbound texts, the queues in Redis and the latest announcements' progress."""
    now = utcnow()
    with ctx.runtime.db.session() as session:
        status = pipeline_status(session, now - timedelta(hours=hours))
    queues, redis_down = _queues_if_up(ctx)
    if as_json:
        click.echo(json.dumps(_status_record(status, queues, now) | ({"redis": redis_down} if redis_down else {})))
    else:
        console = Console()
        _print_status(console if console.is_terminal else Console(width=120), status, queues, now, hours,
                      redis_down)
    if redis_down:  # the database's part is shown above; the exit code still says what is down
        raise DatabaseFailure(f"redis: {redis_down} (the queues are not shown; is REDIS_URL right and the server up?)")


@sms_group.command("cancel-announcement")
@click.argument("announcement_id", metavar="ID", type=click.IntRange(1))
@click.option("--yes", is_flag=True, help="cancel without asking")
@pass_context
def cancel_announcement_command(ctx: Context, announcement_id: int, yes: bool) -> None:
    """Stop an announcement sent by mistake (its ID is in `elimu announce`'s answer and `elimu sms
    status`): its messages still waiting are not sent; those a worker has already taken may still
    arrive. Asks first unless --yes."""
    db = ctx.runtime.db
    with db.session() as session:
        try:
            announcement = find_announcement(session, announcement_id)
        except UnknownAnnouncement as exc:
            raise click.ClickException(str(exc)) from None
        counts = announcement_counts(session, announcement_id)
        waiting = cancellable_count(session, announcement_id)  # queued, and any whose worker was lost
    where = f"{announcement.institution_code}{f' {announcement.grade}' if announcement.grade else ''}"
    click.echo(f"announcement {announcement_id} to {where}, made {iso_utc(announcement.created_at)[:16].replace('T', ' ')} "
               f"UTC, {announcement.recipients} recipient(s): {announcement.body!r}")
    cancelled = counts.get("cancelled", 0)
    taken = counts.get(MessageStatus.QUEUED.value, 0) + counts.get(MessageStatus.SUBMITTED.value, 0) - waiting
    click.echo(f"{waiting} waiting, {taken} taken by a worker, {sum(counts.values()) - waiting - taken - cancelled} "
               f"sent or ended, {cancelled} cancelled")
    if not waiting and not taken:
        click.echo("nothing waiting to cancel" if announcement.cancelled_at is None else "already cancelled")
        return
    if not yes:
        click.confirm(f"Cancel the {waiting} waiting?" if waiting else
                      f"Cancel it? ({taken} taken by a worker may still arrive; none would be sent again)", abort=True)
    result = cancel_announcement(db, announcement_id)
    click.echo(f"announcement {announcement_id}: {result.cancelled} message(s) cancelled; {result.in_flight} already "
               f"taken by a worker (they may still arrive); {result.done} sent or ended before")
    if result.still_waiting:
        click.echo(f"{result.still_waiting} message(s) were held by a worker's transaction throughout: they are ended "
                   "when a worker next takes them, not sent")


def _queues_if_up(ctx: Context) -> tuple[dict[str, dict[str, int]] | None, str | None]:
    """The queue counts (None on embedded Redis), or None and why Redis did not answer: during a
    Redis outage the outbox, read from the database, is still worth seeing."""
    if ctx.settings.embedded_redis:
        return None, None
    try:
        return _queue_counts(ctx.runtime), None
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        return None, f"down ({type(exc).__name__})"
    except redis_errors.ResponseError as exc:  # e.g. a database number the server does not have
        return None, f"refused the connection ({exc})"


# The table's columns: the statuses grouped as an operator reads them (``--json`` has each status).
STATUS_GROUPS: dict[str, tuple[str, ...]] = {
    "waiting": (MessageStatus.QUEUED.value,),
    "with AT": (MessageStatus.SUBMITTED.value, MessageStatus.SENT.value),
    "delivered": (MessageStatus.DELIVERED.value,),
    "failed": (MessageStatus.FAILED.value, MessageStatus.REJECTED.value, MessageStatus.EXPIRED.value),
}


def _grouped(counts: dict[str, int]) -> list[str]:
    return [f"{sum(counts.get(s, 0) for s in statuses):,}" for statuses in STATUS_GROUPS.values()]


def _queue_counts(runtime: Runtime) -> dict[str, dict[str, int]]:
    """Per RQ queue: jobs waiting, retries scheduled, jobs failed for good (kept a while)."""
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry

    from workers.queues import Queues

    queues = Queues(runtime.redis)
    depths = queues.depths()
    return {
        name: {"waiting": depth,
               "scheduled": ScheduledJobRegistry(queue=queues.get(name)).count,
               "failed": FailedJobRegistry(queue=queues.get(name)).count}
        for name, depth in depths.items()
    }


def _waited(now: datetime, since: datetime | None) -> str:
    if since is None:
        return "-"
    seconds = max(int((now - as_utc(since)).total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"


def _status_record(status: PipelineStatus, queues: dict | None, now: datetime) -> dict[str, object]:
    return {
        "at": iso_utc(now),
        "since": iso_utc(status.since),
        "messages": status.by_kind,
        "queued": status.queued,
        "oldest_queued_at": iso_utc(status.oldest_queued_at),
        "unanswered_inbound": status.unanswered_inbound,
        "oldest_unanswered_at": iso_utc(status.oldest_unanswered_at),
        "queues": queues,
        "announcements": [
            {"id": a.id, "institution": a.institution_code, "grade": a.grade, "created_at": iso_utc(a.created_at),
             "recipients": a.recipients, "messages": a.by_status, "cancelled": a.cancelled}
            for a in status.announcements
        ],
    }


def _print_status(console: Console, status: PipelineStatus, queues: dict | None, now: datetime, hours: int,
                  redis_down: str | None = None) -> None:
    made = Table("kind", *STATUS_GROUPS, "all", title=f"messages made in the last {hours} h")
    for kind in sorted(status.by_kind):
        counts = status.by_kind[kind]
        made.add_row(kind, *_grouped(counts), f"{sum(counts.values()):,}")
    console.print(made if status.by_kind else f"no messages made in the last {hours} h")
    console.print(f"queued now: {status.queued:,} (the oldest waiting {_waited(now, status.oldest_queued_at)}); "
                  f"inbound texts unanswered: {status.unanswered_inbound:,} "
                  f"(the oldest {_waited(now, status.oldest_unanswered_at)})", highlight=False)
    if redis_down:
        console.print(f"queues: Redis {redis_down}", highlight=False)
    elif queues is None:
        console.print("queues: embedded Redis (REDIS_URL unset): they live in the `elimu serve` process")
    else:
        table = Table("queue", "waiting", "retries scheduled", "failed jobs", title="queues (Redis)")
        for name, counts in queues.items():
            table.add_row(name, f"{counts['waiting']:,}", f"{counts['scheduled']:,}", f"{counts['failed']:,}")
        console.print(table)
    if status.announcements:
        table = Table("id", "to", "made (UTC)", "phones", *STATUS_GROUPS, "cancelled", title="latest announcements")
        for a in status.announcements:
            made_at = (iso_utc(a.created_at) or "")[5:16].replace("T", " ")
            failed = dict(a.by_status, failed=a.by_status.get(MessageStatus.FAILED.value, 0) - a.cancelled)
            table.add_row(str(a.id), Text(f"{a.institution_code} {a.grade or ''}".strip()), made_at,
                          f"{a.recipients:,}", *_grouped(failed), f"{a.cancelled:,}")
        console.print(table)


@click.command("announce")
@click.option("--institution", "code", required=True, metavar="CODE", help="the school's institution code")
@click.option("--grade", default=None, metavar="GRADE", help="only guardians of learners in this grade")
@click.option("--message", required=True, metavar="TEXT", help="the announcement text")
@click.option("--again", is_flag=True,
              help="send it although the same text went to the same school (and grade) in the last 24 hours")
@pass_context
def announce_command(ctx: Context, code: str, grade: str | None, message: str, again: bool) -> None:
    """Send an announcement to every guardian of a school's learners (one SMS per phone; phones
    that sent STOP are left out). The same text to the same school and grade within 24 hours is
    refused (a command run twice by mistake would bill every message twice) unless --again. One
    sent by mistake is stopped with `elimu sms cancel-announcement ID`."""
    text = message.strip()
    if not text:
        raise click.BadParameter("the message is empty", param_hint="--message")
    if grade is not None:  # "grade 4", "GRADE4": as the import spells it; a typo is refused, not sent to none
        try:
            grade = normalize_school_grade(grade)
        except InvalidGrade as exc:
            raise click.BadParameter(str(exc), param_hint="--grade") from None
    segments = gsm.segments(prefer_gsm7(text))  # as it will go: curly quotes and dashes mapped
    if segments > MAX_ANNOUNCEMENT_SEGMENTS:
        raise click.BadParameter(
            f"the message takes {segments} SMS segments; keep it within {MAX_ANNOUNCEMENT_SEGMENTS}",
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

        try:
            announcement = announce(session, institution, text, grade=grade, progress=advance, again=again)
        except RepeatedAnnouncement as exc:
            earlier = exc.earlier
            raise click.ClickException(
                f"announcement {earlier.id} sent this text to {earlier.institution_code}"
                f"{f' {earlier.grade}' if earlier.grade else ''} at {iso_utc(earlier.created_at)[:16].replace('T', ' ')} "
                f"UTC ({earlier.recipients} recipient(s)); nothing was queued. Add --again to send it once more"
            ) from None
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
@click.option("--to", "recipient", default=None, metavar="MSISDN",
              help="only messages to this phone (any E.164 number: results replies go abroad too)")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@click.option("--json", "as_json", is_flag=True, help="one JSON array")
@pass_context
def messages(ctx: Context, recipient: str | None, limit: int, as_json: bool) -> None:
    """Recent outbound messages, newest first (one-time codes are never shown)."""
    if recipient:
        recipient = audited_phone(recipient, "--to")  # results replies go abroad too
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
    # On a narrow terminal the text and the reason wrap; the number, kind, status and time are kept
    # whole (a cut number, `+2547123…`, cannot be looked up), the time as `sms status` shows it.
    table = Table()
    for name in ("id", "to", "kind", "status", "created (UTC)"):
        table.add_column(name, no_wrap=True, min_width=len(name))
    table.columns[1].min_width = max(len(row.recipient) for row in rows)
    table.add_column("text", ratio=3)
    table.add_column("reason", ratio=2)
    for row in rows:
        record = _record(row)
        # a body or reason is shown as it is, never read as Rich markup ("[/]" in a reason from a
        # delivery report would end the command with an error, "[link=...]" would make a link)
        table.add_row(str(record["id"]), str(record["to"]), str(record["kind"]), str(record["status"]),
                      str(record["created_at"])[5:16].replace("T", " "), Text(_shown_body(row)),
                      Text(row.failure_reason or ""))
    console = Console()
    if not console.is_terminal:  # piped: do not wrap to 80 columns
        console = Console(width=200)
    console.print(table)


def _record(row: OutboundMessage) -> dict[str, object]:
    return {
        "id": row.id,
        "to": row.recipient,
        "kind": str(row.kind),
        "status": str(row.status),
        "provider_message_id": row.provider_message_id,
        "created_at": iso_utc(row.created_at),
    }


def _shown_body(row: OutboundMessage) -> str:
    if row.kind == MessageKind.OTP:
        return "(one-time code, not shown)"
    body = " ".join(row.body.split())
    return body if len(body) <= 60 else body[:57] + "..."


commands = [worker, sms_group, announce_command, messages]
