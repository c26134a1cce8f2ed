"""The ``elimu`` command line. Command groups live in modules named in ``COMMAND_MODULES``."""

from __future__ import annotations

import importlib
import sys
import warnings

import click

from ..config import ConfigError, Settings
from ..runtime import Runtime
from .errors import DatabaseFailure

# Each module exposes ``commands``: a list of click commands or groups to add to ``elimu``.
COMMAND_MODULES = (
    "gateway.cli.serve",
    "gateway.cli.database",
    "gateway.cli.registry",
    "gateway.cli.results",
    "gateway.cli.demo",
    "gateway.cli.sms",
    "gateway.cli.audit",
    "gateway.cli.privacy",
    "gateway.cli.simulate",
)


class Context:
    """Lazily built runtime, so ``elimu --help`` needs no database."""

    def __init__(self) -> None:
        self._runtime: Runtime | None = None

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            try:
                self._runtime = Runtime.build(Settings.from_env())
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
            except OSError as exc:  # the SQLite database's folder cannot be made
                raise DatabaseFailure(f"database: cannot create {exc.filename or 'its folder'}: "
                                      f"{exc.strerror or exc} (set ELIMU_INSTANCE_PATH or DATABASE_URL to a "
                                      "place this user can write)") from None
        return self._runtime


pass_context = click.make_pass_decorator(Context, ensure=True)


class ElimuGroup(click.Group):
    """Every command: a database or Redis failure is one line and exit 3, never a traceback; Ctrl-C
    is one line and exit 130 (128 + SIGINT, as a shell reports it), after what the command prints
    when stopped (an import: its counts and the line it stopped at)."""

    def invoke(self, ctx: click.Context):
        from .errors import EXIT_INTERRUPTED, database_errors

        try:
            with database_errors():
                return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("Error: interrupted (Ctrl-C)", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


@click.group(cls=ElimuGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="elimu-gateway")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Elimu Gateway: USSD and SMS access to Kenya's education registry."""
    ctx.ensure_object(Context)


for _name in COMMAND_MODULES:
    for _command in importlib.import_module(_name).commands:
        cli.add_command(_command)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    click.echo(f"warning: {message}", err=True)


def main() -> None:
    warnings.showwarning = _one_line_warning  # a person reads these: no source lines
    try:
        cli(prog_name="elimu")
    except ConfigError as exc:  # raised outside a command's own handling
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
