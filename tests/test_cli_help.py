"""Every command's help as an operator reads it: listings not cut mid-phrase, no reST markup."""

from __future__ import annotations

import click
from click.testing import CliRunner

from gateway.cli import cli


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def test_every_help_answers_and_reads_as_text():
    for path, _command in _commands(cli):
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "``" not in result.output, path  # docstring markup, shown as typed by click


def test_the_listings_do_not_cut_a_phrase_open():
    """click's listing takes a command's first sentence: 'Publish EXAM YEAR (e.g.' was all
    `elimu results --help` said of release."""
    for path, command in _commands(cli):
        short = command.get_short_help_str(limit=45)
        if not short.endswith("..."):
            assert short.count("(") == short.count(")"), (path, short)
