"""``elimu serve`` refuses an address it cannot listen on in one line, before gunicorn starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import cli
from tests.cli_support import SECRET


def _serve(tmp_path, *args: str):
    env = {"ELIMU_ENV": "development", "ELIMU_SECRET_KEY": SECRET, "ELIMU_INSTANCE_PATH": str(tmp_path),
           "DATABASE_URL": None, "REDIS_URL": None}
    return CliRunner().invoke(cli, ["serve", *args], env=env)


def test_a_port_in_use_is_one_line_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve(tmp_path, "--port", str(port))
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: 127.0.0.1:{port} is already in use (another `elimu serve` or "
                                     "`make run`?): stop it, or choose another --port")


def test_a_host_not_of_this_machine_is_one_line(tmp_path):
    result = _serve(tmp_path, "--host", "192.0.2.1", "--port", "8123")  # TEST-NET-1, on no interface here
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot listen on 192.0.2.1:8123: ") and result.output.count("\n") == 1


def test_a_port_out_of_range_is_refused(tmp_path):
    result = _serve(tmp_path, "--port", "70000")
    assert result.exit_code == 2 and "70000 is not in the range 1<=x<=65535" in result.output


def _elimu_process(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``elimu ARGS`` in a fresh interpreter (gunicorn not imported yet), with ``env`` added."""
    environ = {**os.environ, "ELIMU_ENV": "development", "ELIMU_SECRET_KEY": SECRET,
               "ELIMU_INSTANCE_PATH": str(tmp_path), **env}
    environ.pop("DATABASE_URL", None)
    environ.pop("REDIS_URL", None)
    return subprocess.run([sys.executable, "-c", "from gateway.cli import cli; cli()", *args], env=environ,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_web_concurrency_that_is_not_a_number_is_one_line(tmp_path):
    """gunicorn reads WEB_CONCURRENCY with int() when imported: `abc` was its traceback, for
    `elimu serve` and, as the CLI imported gunicorn to list its commands, for every command."""
    served = _elimu_process(tmp_path, "serve", "--port", "8391", WEB_CONCURRENCY="abc")
    assert served.returncode == 1 and "Traceback" not in served.stderr
    assert served.stderr == "Error: WEB_CONCURRENCY must be a whole number from 1, not 'abc'\n"
    other = _elimu_process(tmp_path, "db", "--help", WEB_CONCURRENCY="abc")
    assert other.returncode == 0 and other.stderr == "" and "upgrade" in other.stdout


def test_a_worker_count_below_one_is_refused(tmp_path):
    """`--workers 0` was taken as the default 2, and `--workers -1` printed the banner, then
    gunicorn's bare `Error: Value must be positive: -1`."""
    for count in ("0", "-1"):
        # an address no interface has: without the check the command stops there, not serving
        result = _serve(tmp_path, "--workers", count, "--host", "192.0.2.1", "--port", "8123")
        assert result.exit_code == 2, result.output
        assert f"Invalid value for '--workers': {count} is not in the range x>=1." in result.output
        assert "Elimu Gateway on" not in result.output


def test_gunicorn_itself_stops_on_a_bad_count_with_one_line(tmp_path):
    """`gunicorn -c gunicorn.conf.py wsgi:app`, as the unit and the Procfile run it: a count the
    config refuses ends gunicorn with its one line, not gunicorn's "Failed to read config file"
    traceback (a SystemExit passes through its loader)."""
    root = Path(__file__).resolve().parents[1]
    for name, value in (("ELIMU_THREADS", "0"), ("WEB_CONCURRENCY", "0"), ("ELIMU_THREADS", "four")):
        environ = {**os.environ, name: value, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
        done = subprocess.run([str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py",
                               "--bind", "127.0.0.1:0", "wsgi:app"], cwd=root, env=environ, capture_output=True,
                              text=True, timeout=60, check=False)
        assert (done.returncode, done.stderr) == (1, f"Error: {name} must be a whole number from 1, not {value!r}\n")


def test_serve_with_a_config_checks_the_environment_before_becoming_gunicorn(tmp_path):
    """`elimu serve --config gunicorn.conf.py` (the unit's and the Procfile's command): a bad setting
    is our one line before gunicorn starts (its workers would each fail with a traceback), and the
    options gunicorn.conf.py decides are refused beside it."""
    config = str(Path(__file__).resolve().parents[1] / "gunicorn.conf.py")
    bad = _elimu_process(tmp_path, "serve", "--config", config, ELIMU_MAX_BODY_BYTES="abc")
    assert (bad.returncode, bad.stderr) == (1, "Error: ELIMU_MAX_BODY_BYTES must be a number, not 'abc'\n")
    both = _elimu_process(tmp_path, "serve", "--config", config, "--port", "9000", "--workers", "3")
    assert both.returncode == 2 and both.stderr.endswith(
        "Error: --port, --workers cannot be used with --config: set ELIMU_BIND, WEB_CONCURRENCY and ELIMU_THREADS "
        "(docs/deploy.md)\n")


def test_serve_with_a_config_never_runs_a_gunicorn_of_another_install(tmp_path, monkeypatch):
    """Only the gunicorn beside the `elimu` run or in its environment's scripts folder is exec'd;
    with neither, one line (no other install's gunicorn from PATH, whose Python lacks the app)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))  # the config only sets a default
    monkeypatch.setattr("sysconfig.get_path", lambda _name: str(tmp_path))
    monkeypatch.setattr("sys.argv", [str(tmp_path / "elimu")])
    config = str(Path(__file__).resolve().parents[1] / "gunicorn.conf.py")
    result = _serve(tmp_path, "--config", config)
    assert result.exit_code == 1
    assert result.output == f"Error: gunicorn is not installed beside elimu (in {tmp_path}): pip install the project\n"
