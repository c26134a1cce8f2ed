"""``elimu registry``: CSV imports, the NEMIS transfer moves (request, release, admit, cancel) and
taking a phone off a learner (``unlink-guardian``)."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.orm import Session

from registry.importer import (
    LEARNER_COLUMNS,
    RESULT_COLUMNS,
    CsvFile,
    ImportReport,
    UnreadableFile,
    import_learners,
    import_results,
)
from registry.models import Transfer, TransferState
from registry.services.guardian_links import UnlinkRefused, unlink_guardian
from registry.services.learners import guardians_of
from registry.services.transfers import (
    TransferInProgress,
    TransferRefused,
    admit,
    cancel_transfer,
    release,
    request_transfer,
    transfers_in_progress,
)

from . import Context, pass_context
from .errors import database_errors
from .privacy import operator
from .times import as_utc, iso_utc

EXIT_REJECTED = 1
EXIT_UNREADABLE = 2
SPOOL_CHUNK = 1 << 20


@click.group("registry")
def registry_group() -> None:
    """Learners, schools and results: imports and transfers."""


def _run_import(ctx: Context, path: Path, columns: tuple[str, ...], importer: Callable[..., ImportReport]) -> None:
    """Import one CSV file (``-``: standard input); exit 0 (all accepted), 1 (some rejected) or 2
    (unreadable).

    Exit 2 comes only from opening the file (its header is checked before anything is written);
    a damaged row further on is a rejected row.
    """
    with _spooled(path) as readable:
        try:
            source = CsvFile(readable, columns)
        except UnreadableFile as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_UNREADABLE)
        report = ImportReport()
        name = readable.name
        with source, _progress(source) as (say, advance), database_errors(), _stopped(report):
            for column in source.ignored_columns:
                say(f"{name}: ignoring unknown column {column!r}")
            importer(
                ctx.runtime.db,
                source,
                on_reject=lambda line, reason: say(f"line {line}: {reason}"),
                on_warning=lambda line, text: say(f"{name}: line {line}: {text}"),
                progress=advance,
                report=report,
            )
    click.echo(f"{report.summary()} ({report.rows} rows in {report.seconds:.1f} s){_swallowed(source)}")
    sys.exit(EXIT_REJECTED if report.rejected else 0)


@contextmanager
def _spooled(path: Path) -> Iterator[Path]:
    """``path``, or for ``-`` (standard input) and a pipe named by a path (``/dev/stdin``, a shell's
    ``<(...)``) a copy of what it gives in a temporary file, named ``stdin`` or as the pipe: the
    importer opens the file by name, reads its size and may read its start twice."""
    stdin = str(path) == "-"
    if not stdin and (not path.exists() or path.is_dir() or path.is_file()):
        yield path  # a file, or what CsvFile names as missing or a folder
        return
    if stdin and sys.stdin.isatty():
        click.echo("Error: -: standard input is a terminal, not a file: pipe the file in "
                   f"(cat FILE.csv | {click.get_current_context().command_path} -) or name it", err=True)
        sys.exit(EXIT_UNREADABLE)
    with tempfile.TemporaryDirectory(prefix="elimu-import-") as folder:
        copy = Path(folder) / ("stdin" if stdin else path.name)
        try:
            with (nullcontext(sys.stdin.buffer) if stdin else path.open("rb")) as given, \
                    copy.open("wb") as spool:
                shutil.copyfileobj(given, spool, SPOOL_CHUNK)
        except OSError as exc:
            click.echo(f"Error: {'standard input' if stdin else path}: {exc.strerror or exc}", err=True)
            sys.exit(EXIT_UNREADABLE)
        yield copy


@contextmanager
def _stopped(report: ImportReport) -> Iterator[None]:
    """An import that stops early (a database failure, Ctrl-C) prints the counts of what it wrote
    and where it stopped before its error, whole even if Ctrl-C is pressed again meanwhile."""
    try:
        yield
    except BaseException:
        if report.stopped_at is not None:
            with _ctrl_c_held():
                click.echo(f"{report.summary()} ({report.rows} rows in {report.seconds:.1f} s); {report.stopped()}")
        raise


@contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Ctrl-C inside is ignored (on the main thread, where Python's own handler would raise)."""
    ours = threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if ours:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _swallowed(source: CsvFile) -> str:
    """The counts' note on lines a quote left open made part of one rejected row (not counted as rows)."""
    notes = []
    for first, last in source.swallowed:
        lines = f"line {last} was" if last == first + 1 else f"lines {first + 1}-{last} were"
        notes.append(f"; {lines} not imported: see line {first}")
    return "".join(notes)


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


@contextmanager
def _progress(source: CsvFile) -> Iterator[tuple[Callable[[str], None], Callable[[int], None]]]:
    """``(say, advance)``: messages to stderr, and a progress bar there when it is a terminal."""
    if not _stderr_is_terminal():
        yield (lambda text: click.echo(text, err=True)), (lambda _rows: None)
        return
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(source.path.name, total=source.size)
        yield (lambda text: bar.console.print(text, markup=False, highlight=False)), (
            lambda _rows: bar.update(task, completed=source.position())
        )


@registry_group.command("import-learners")
@click.argument("file", type=click.Path(path_type=Path, allow_dash=True))
@pass_context
def import_learners_command(ctx: Context, file: Path) -> None:
    """Import learners.csv (one row per learner-guardian pair); FILE `-` reads standard input.

    Prints the counts; rejected rows go to stderr as `line N: reason`. Exit 0 when every row was
    accepted, 1 when some were rejected (the good rows are kept), 2 when the file is unreadable.
    """
    _run_import(ctx, file, LEARNER_COLUMNS, import_learners)


@registry_group.command("import-results")
@click.argument("file", type=click.Path(path_type=Path, allow_dash=True))
@pass_context
def import_results_command(ctx: Context, file: Path) -> None:
    """Import results.csv; same output and exit codes as import-learners.

    Imported results stay unreleased until `elimu results release EXAM YEAR`.
    """
    _run_import(ctx, file, RESULT_COLUMNS, import_results)


def _move(ctx: Context, action: Callable[..., Transfer], *args: str) -> str:
    with database_errors(), ctx.runtime.db.transaction() as session:
        try:
            transfer = action(session, *args, ussd_code=ctx.runtime.settings.ussd_code)  # named by generic notices
        except TransferRefused as exc:
            raise click.ClickException(f"refused: {exc.reason}") from None
        learner = transfer.learner
        return f"{learner.upi} ({learner.masked_name}): {_outcome(transfer)}; {_notices(session, transfer)}"


def _outcome(transfer: Transfer) -> str:
    """The transfer's state after the move, and where a cancelled transfer leaves the learner."""
    if transfer.state is TransferState.CANCELLED:
        return f"transfer cancelled, enrolled at {transfer.learner.institution.code}"
    return transfer.state.value


def _notices(session: Session, transfer: Transfer) -> str:
    """What the guardians were sent: a request, and the cancelling of one, tell them nothing."""
    if transfer.released_at is None:
        return "no SMS notice (the guardians were not told of the request)"
    return f"SMS notice queued to {len(guardians_of(session, transfer.learner))} phone(s)"


@registry_group.command("request-transfer")
@click.argument("upi")
@click.option("--institution", "code", required=True, metavar="CODE", help="the receiving school's code")
@pass_context
def request_transfer_command(ctx: Context, upi: str, code: str) -> None:
    """The receiving school asks for a learner (NEMIS step 1)."""
    with database_errors(), ctx.runtime.db.transaction() as session:
        try:
            transfer = request_transfer(session, upi, code)
        except TransferRefused as exc:
            raise click.ClickException(f"refused: {exc.reason}") from None
        click.echo(
            f"{transfer.learner.upi} ({transfer.learner.masked_name}): transfer from "
            f"{transfer.from_institution.code} to {code.strip().upper()} requested; {transfer.from_institution.code} releases next"
        )


@registry_group.command("release")
@click.argument("upi")
@click.option("--institution", "code", metavar="CODE", help="the releasing school's code (checked: the learner's school)")
@pass_context
def release_command(ctx: Context, upi: str, code: str | None) -> None:
    """The current school releases a learner (NEMIS step 2); guardians get an SMS notice."""
    click.echo(_move(ctx, release, upi, code))


@registry_group.command("admit")
@click.argument("upi")
@click.option("--institution", "code", required=True, metavar="CODE", help="the admitting school's code")
@pass_context
def admit_command(ctx: Context, upi: str, code: str) -> None:
    """The receiving school admits a released learner (NEMIS step 3); guardians get an SMS notice."""
    click.echo(_move(ctx, admit, upi, code))


@registry_group.command("cancel-transfer")
@click.argument("upi")
@click.option("--institution", "code", metavar="CODE", help="the cancelling school's code (checked: either school of the transfer)")
@pass_context
def cancel_transfer_command(ctx: Context, upi: str, code: str | None) -> None:
    """Either school withdraws a transfer not yet admitted: the learner stays enrolled at the
    current school; guardians told of a release get an SMS notice."""
    click.echo(_move(ctx, cancel_transfer, upi, code))


@registry_group.command("transfers")
@click.option("--institution", "code", metavar="CODE", help="only this school's transfers (leaving or receiving)")
@click.option("--json", "as_json", is_flag=True, help="one JSON array")
@pass_context
def transfers_command(ctx: Context, code: str | None, as_json: bool) -> None:
    """Transfers in progress (requested, or released and not yet admitted), longest waiting first."""
    with database_errors(), ctx.runtime.db.session() as session:
        try:
            rows = transfers_in_progress(session, code)
        except TransferRefused as exc:
            raise click.ClickException(f"refused: {exc.reason}") from None
    if as_json:
        click.echo(json.dumps([_transfer_record(row) for row in rows]))
    elif not rows:
        click.echo("no transfers in progress")
    else:
        click.echo(f"{'upi':<10} {'learner':<16} {'state':<10} {'from':<6} {'to':<6} since")
        for row in rows:
            click.echo(f"{row.upi:<10} {row.masked_name:<16} {row.state.value:<10} {row.from_code:<6} "
                       f"{row.to_code or 'any':<6} {as_utc(row.since):%Y-%m-%d %H:%M} UTC")


def _transfer_record(row: TransferInProgress) -> dict[str, object]:
    return {"upi": row.upi, "learner": row.masked_name, "state": row.state.value, "from": row.from_code,
            "to": row.to_code, "since": iso_utc(row.since)}


@registry_group.command("unlink-guardian")
@click.argument("upi")
@click.argument("phone")
@click.option("--institution", "code", metavar="CODE", help="the learner's school (checked: a school unlinks only its own)")
@pass_context
def unlink_guardian_command(ctx: Context, upi: str, phone: str, code: str | None) -> None:
    """Take PHONE off learner UPI: a wrong or reassigned number an import linked. The phone stops
    seeing the learner at once (status, UPI, results without a name, notices; a notice, UPI, results
    reply or announcement about the learner still queued for it is not sent); the removal is audited.
    Importing a file that still lists the number links it again, unverified."""
    with database_errors(), ctx.runtime.db.transaction() as session:
        try:
            removed = unlink_guardian(session, upi, phone, by=operator(), institution_code=code)
        except UnlinkRefused as exc:
            raise click.ClickException(f"refused: {exc.reason}") from None
    was = f"verified {as_utc(removed.verified_at):%Y-%m-%d}" if removed.verified_at else "never verified"
    click.echo(f"{removed.upi} ({removed.masked_name}): {removed.phone} ({removed.relationship}, {was}) unlinked; "
               f"{removed.phones_left} other phone(s) still linked"
               + (f"; {removed.withdrawn} queued message(s) about the learner not sent" if removed.withdrawn else ""))


commands = [registry_group]
