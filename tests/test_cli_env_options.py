"""Options an environment variable sets (a systemd unit's, say): a bad value names the variable."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gateway.cli import cli
from tests.cli_support import SECRET


def _elimu(tmp_path, *args: str, **env: str):
    base = {"ELIMU_ENV": "development", "ELIMU_SECRET_KEY": SECRET, "ELIMU_INSTANCE_PATH": str(tmp_path),
            "DATABASE_URL": None, "REDIS_URL": None}
    return CliRunner().invoke(cli, list(args), env={**base, **env})


@pytest.mark.parametrize(("command", "variable", "option"), [
    (["purge"], "ELIMU_RETENTION_DAYS", "--older-than"),
    (["worker", "--burst"], "ELIMU_WORKER_METRICS_PORT", "--metrics-port"),
])
def test_a_bad_value_from_the_environment_names_the_variable(tmp_path, command, variable, option):
    result = _elimu(tmp_path, *command, **{variable: "abc"})
    assert result.exit_code == 2
    assert f"Error: Invalid value for '{option}' (env var: '{variable}'): 'abc' is not a valid integer range" \
        in result.output


def test_help_names_the_variable(tmp_path):
    assert "env var: ELIMU_RETENTION_DAYS" in _elimu(tmp_path, "purge", "--help").output
