"""``elimu results``: publishing an exam series."""

from __future__ import annotations

import click

from registry.exams import InvalidExamData, exam_named
from registry.services.results import UnknownSeries, release_results

from . import Context, pass_context
from .errors import database_errors


@click.group("results")
def results_group() -> None:
    """Exam results."""


@results_group.command("release")
@click.argument("exam")
@click.argument("year", type=int)
@pass_context
def release_command(ctx: Context, exam: str, year: int) -> None:
    """Publish EXAM YEAR (e.g. `KCSE 2025`); until then queries answer that results are not out."""
    try:
        name = exam_named(exam).name
    except InvalidExamData as exc:
        raise click.BadParameter(str(exc), param_hint="EXAM") from None
    with database_errors(), ctx.runtime.db.transaction() as session:
        try:
            series, count, already = release_results(session, name, year)
        except UnknownSeries as exc:
            raise click.ClickException(str(exc)) from None
        when = series.released_at.strftime("%Y-%m-%d %H:%M UTC") if series.released_at else ""
        if already:
            click.echo(f"{name} {year} was already released on {when}: {count} results")
        else:
            click.echo(f"{name} {year} released: {count} results now answer")


commands = [results_group]
