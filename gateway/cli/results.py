"""``elimu results``: publishing an exam series (and taking it back), and what is imported and released."""

from __future__ import annotations

import json
from datetime import datetime

import click

from registry.exams import InvalidExamData, exam_named
from registry.services.results import (
    SeriesStatus,
    UnknownSeries,
    answers_since,
    release_results,
    series_status,
    withdraw_release,
)

from . import Context, pass_context
from .errors import database_errors
from .times import as_utc, iso_utc


@click.group("results")
def results_group() -> None:
    """Exam results."""


@results_group.command("release")
@click.argument("exam")
@click.argument("year", type=int)
@pass_context
def release_command(ctx: Context, exam: str, year: int) -> None:
    """Publish EXAM YEAR, such as `KCSE 2025`: until then queries answer that results are not out."""
    name = _exam_name(exam)
    with database_errors(), ctx.runtime.db.transaction() as session:
        try:
            series, count, already = release_results(session, name, year)
        except UnknownSeries as exc:
            raise click.ClickException(str(exc)) from None
        if already:
            click.echo(f"{name} {year} was already released on {_when(series.released_at)}: {count} results")
        else:
            click.echo(f"{name} {year} released: {count} results now answer")


@results_group.command("withdraw")
@click.argument("exam")
@click.argument("year", type=int)
@pass_context
def withdraw_command(ctx: Context, exam: str, year: int) -> None:
    """Take back the release of EXAM YEAR (one made by mistake or too early): queries answer that
    results are not out again, from the next message on. Says how many answers went out since."""
    name = _exam_name(exam)
    with database_errors(), ctx.runtime.db.transaction() as session:
        try:
            withdrawal = withdraw_release(session, name, year)
        except UnknownSeries as exc:
            raise click.ClickException(str(exc)) from None
    if withdrawal.released_at is None:
        click.echo(f"{name} {year} was not released: nothing to withdraw ({withdrawal.results} results)")
        return
    click.echo(f"{name} {year} withdrawn: its {withdrawal.results} results answer 'not yet released' again")
    with database_errors(), ctx.runtime.db.session() as session:  # after the commit: a scan of the audit trail
        replied = answers_since(session, name, year, withdrawal.released_at)
    click.echo(f"{replied} answer(s) went out since its release on {_when(withdrawal.released_at)}: "
               f"elimu audit --series {name} {year} lists them")


@results_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="one JSON array")
@pass_context
def status_command(ctx: Context, as_json: bool) -> None:
    """Each exam series imported: results, how many are linked to learners, released or not."""
    with database_errors(), ctx.runtime.db.session() as session:
        rows = series_status(session)
    if as_json:
        click.echo(json.dumps([_status_record(row) for row in rows]))
    elif not rows:
        click.echo("no results have been imported")
    else:
        click.echo(f"{'exam':<6} {'year':<4} {'results':>9} {'linked':>9}  released")
        for row in rows:
            click.echo(f"{row.exam:<6} {row.year:<4} {row.results:>9} {row.linked:>9}  {_released(row)}")


def _exam_name(exam: str) -> str:
    """The exam's name as the registry spells it (``kcse`` -> ``KCSE``); a usage error otherwise."""
    try:
        return exam_named(exam).name
    except InvalidExamData as exc:
        raise click.BadParameter(str(exc), param_hint="EXAM") from None


def _released(row: SeriesStatus) -> str:
    return _when(row.released_at) if row.released_at else "not released"


def _when(at: datetime | None) -> str:
    return f"{as_utc(at):%Y-%m-%d %H:%M} UTC" if at else ""  # PostgreSQL gives times in the server's zone


def _status_record(row: SeriesStatus) -> dict[str, object]:
    return {"exam": row.exam, "year": row.year, "results": row.results, "linked": row.linked,
            "released_at": iso_utc(row.released_at)}


commands = [results_group]
