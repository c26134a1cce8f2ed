"""``elimu demo seed``: demo schools, learners, guardians and results to try the service with."""

from __future__ import annotations

import click

from registry import demo

from . import Context, pass_context
from .errors import database_errors


@click.group("demo")
def demo_group() -> None:
    """Demo data."""


@demo_group.command("seed")
@click.option("--if-empty", is_flag=True, help="do nothing when the registry already has learners")
@pass_context
def seed_command(ctx: Context, if_empty: bool) -> None:
    """Load the demo data (three schools, about fifty learners). Loading again adds what is missing
    and keeps what was done with it since: transfers, the schools they moved learners to, languages."""
    db = ctx.runtime.db
    with database_errors():
        if if_empty and (count := demo.learner_count(db)):
            click.echo(f"the registry already has {count} learners: demo data not loaded")
            return
        learners, results = demo.seed(db)
        count = demo.learner_count(db)
    # the import's counts are of rows, one per learner and guardian: more than the learners
    click.echo(f"{count} learners in the registry; demo rows of learner and guardian: {learners.summary()}; "
               f"demo results: {results.summary()}")
    click.echo("Try these phones (README.md, 'Demo data', lists the identifiers):")
    for learner in demo.FEATURED:
        for guardian in learner.guardians:
            click.echo(
                f"  {guardian.phone}  {guardian.name} ({guardian.relationship}): {learner.name} {learner.upi},"
                f" birth cert {learner.birth_cert}, born {learner.dob}"
            )


commands = [demo_group]
