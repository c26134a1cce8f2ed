"""``elimu worker --metrics-port``: a worker's own counters over HTTP (the web's /metrics cannot
see what another process counts)."""

from __future__ import annotations

import socket
import urllib.request

import click
import pytest
from click.testing import CliRunner
from prometheus_client import REGISTRY

from gateway.cli import Context, cli
from gateway.cli.sms import serve_worker_metrics
from gateway.metrics import SMS_MESSAGES
from tests.ports import free_port


def serve_on_a_free_port() -> int:
    """``serve_worker_metrics`` on a port found free, or on another when that one was taken before
    it was bound (another test's server): the port it now serves on, surely its own."""
    for _ in range(5):
        port = free_port()
        try:
            serve_worker_metrics("127.0.0.1", port)
        except click.ClickException as exc:
            if "in use" not in exc.message:
                raise
            continue
        return port
    raise AssertionError("every port tried was taken before the metrics server bound it")


def test_a_worker_serves_what_it_counted():
    port = serve_on_a_free_port()
    labels = {"kind": "otp", "status": "accepted"}
    before = REGISTRY.get_sample_value("elimu_sms_messages_total", labels) or 0.0  # other tests' counts too
    SMS_MESSAGES.labels("otp", "accepted").inc()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    line = next(x for x in body.splitlines() if x.startswith('elimu_sms_messages_total{kind="otp",status="accepted"}'))
    assert float(line.split()[-1]) == before + 1  # this process's counter, as it is now


def test_a_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(click.ClickException, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            serve_worker_metrics("127.0.0.1", port)


def test_the_port_comes_from_the_option_or_the_environment(integration_runtime, monkeypatch):
    served: list[tuple[str, int]] = []
    monkeypatch.setattr("gateway.cli.sms.serve_worker_metrics", lambda host, port: served.append((host, port)))
    monkeypatch.setattr("workers.worker.run_worker", lambda *args, **kwargs: None)

    def run(*args: str, env: dict[str, str] | None = None):
        context = Context()
        context._runtime = integration_runtime
        return CliRunner().invoke(cli, ["worker", *args], obj=context, env=env)

    assert run("--metrics-port", "9201").exit_code == 0
    assert run(env={"ELIMU_WORKER_METRICS_PORT": "9202"}).exit_code == 0
    assert run().exit_code == 0  # none asked: none served
    assert served == [("127.0.0.1", 9201), ("127.0.0.1", 9202)]
    refused = run("--metrics-port", "0")
    assert refused.exit_code == 2 and "--metrics-port" in refused.output
