"""``elimu simulate`` against a service that checks its callbacks, without the token."""

from __future__ import annotations

import dataclasses

from click.testing import CliRunner

from gateway.app import create_app
from gateway.cli.simulate import simulate
from gateway.runtime import Runtime
from tests.conftest import make_settings
from tests.test_simulator import TOKEN, _serving

HINT = ("answered 403: the service checks callbacks: set ELIMU_WEBHOOK_TOKEN to its token (and run this from a "
        "network in its ELIMU_ALLOWED_NETWORKS)\n")


def _checked_service(runtime, tmp_path, **overrides):
    settings = dataclasses.replace(make_settings(tmp_path, runtime.db, webhook_token=TOKEN, **overrides),
                                   env="production")
    return create_app(runtime=Runtime.build(settings, db=runtime.db, redis=runtime.redis))


def test_a_simulator_inbox_refused_for_want_of_the_token_says_so(runtime, tmp_path, monkeypatch):
    """The inbox's 403 was 'cannot reach URL (HTTPError); start it with `make run`', of a service running."""
    monkeypatch.delenv("ELIMU_WEBHOOK_TOKEN", raising=False)
    with _serving(_checked_service(runtime, tmp_path)) as url:
        result = CliRunner().invoke(simulate, ["--url", url], input="q\n")
    assert result.exit_code == 1
    assert result.output == f"Error: the simulator inbox {HINT}"


def test_a_callback_refused_for_want_of_the_token_says_what_to_set(runtime, tmp_path, monkeypatch):
    monkeypatch.delenv("ELIMU_WEBHOOK_TOKEN", raising=False)
    with _serving(_checked_service(runtime, tmp_path, simulator_enabled=False)) as url:
        result = CliRunner().invoke(simulate, ["--url", url], input="1\n")
    assert result.exit_code == 1
    assert result.output.endswith(f"Error: USSD {HINT}")
