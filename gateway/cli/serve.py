"""``elimu serve``: the web service under gunicorn (Flask's development server only with --debug).

gunicorn is imported only when ``serve`` runs, after WEB_CONCURRENCY is checked: importing it reads
WEB_CONCURRENCY (``int()`` of it, for a default), so a value like ``abc`` made it raise a traceback
on import, and with it every ``elimu`` command (the CLI imports this module to list its commands).
For the same reason production starts ``elimu serve --config gunicorn.conf.py``, which checks the
environment and then becomes ``gunicorn -c gunicorn.conf.py wsgi:app`` (``exec_gunicorn``).
"""

from __future__ import annotations

import errno
import os
import runpy
import shutil
import socket
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path
from typing import NoReturn

import click

from ..config import ConfigError, Settings
from ..heap import post_worker_init
from ..logs import ACCESS_LOG_FORMAT
from . import Context, pass_context

WSGI_APP = "wsgi:app"
_NOT_WITH_CONFIG = ("host", "port", "workers", "debug")


def _gunicorn(app_factory, options: dict[str, object]):
    """A gunicorn application running ``app_factory()`` with ``options``."""
    from gunicorn.app.base import BaseApplication

    class Gunicorn(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return app_factory()

    return Gunicorn()


def check_web_concurrency() -> None:
    """One line instead of gunicorn's traceback when WEB_CONCURRENCY is not a number: gunicorn
    takes ``int()`` of it when imported, before any setting of ours is read."""
    raw = os.environ.get("WEB_CONCURRENCY")
    try:
        int(raw) if raw is not None else None
    except ValueError:
        raise click.ClickException(f"WEB_CONCURRENCY must be a whole number from 1, not {raw!r}") from None


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="gunicorn worker processes (embedded mode: always 1)")
@click.option("--debug", is_flag=True, help="Flask's development server with the debugger (never in production)")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="production: check the environment, then become `gunicorn -c CONFIG wsgi:app` in this "
                   "same process (gunicorn.conf.py: ELIMU_BIND, WEB_CONCURRENCY, ELIMU_THREADS; --host, "
                   "--port, --workers and --debug do not apply)")
@pass_context
def serve(ctx: Context, host: str, port: int, workers: int, debug: bool, config: Path | None) -> None:
    """Run the web service (and, on embedded Redis, the SMS worker in the same process)."""
    if config is not None:
        exec_gunicorn(config)
    settings = ctx.settings
    check_web_concurrency()
    _check_address_free(host, port)
    embedded = settings.embedded_redis
    child_exit = None if embedded or debug else _metrics_across_processes()
    from ..app import create_app  # after the line above: prometheus_client reads its folder on import
    if embedded:
        workers = 1  # the in-process Redis lives in this one process
    if debug:
        if not settings.dev_mode:
            raise click.ClickException("--debug is refused outside development mode")
        create_app(settings=settings, start_embedded_worker=embedded).run(host=host, port=port, debug=True,
                                                                          use_reloader=False)
        return
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": 8 if embedded else 4,
        "worker_class": "gthread",
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
    }
    if child_exit is not None:
        options["child_exit"] = child_exit
    options["post_worker_init"] = post_worker_init
    click.echo(f"Elimu Gateway on http://{host}:{port} ({'embedded' if embedded else 'production'} mode)")
    _gunicorn(lambda: create_app(settings=settings, start_embedded_worker=embedded), options).run()


def exec_gunicorn(config: Path) -> NoReturn:
    """Become ``gunicorn -c CONFIG wsgi:app`` once the environment is checked, each bad value in one
    line (exit 1): gunicorn reads WEB_CONCURRENCY with ``int()`` before any configuration, so
    ``abc`` was its traceback. The process is replaced, not wrapped: its id stays gunicorn's
    master's, so systemd's $MAINPID (ExecReload's HUP, stop's TERM) and a Procfile runner's signals
    reach gunicorn itself, as when the unit ran gunicorn directly."""
    given = [f"--{name}" for name in _NOT_WITH_CONFIG
             if click.get_current_context().get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
    if given:
        raise click.UsageError(f"{', '.join(given)} cannot be used with --config: set ELIMU_BIND, WEB_CONCURRENCY "
                               "and ELIMU_THREADS (docs/deploy.md)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the app gives its warnings itself when gunicorn loads it
        try:
            Settings.from_env()
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    try:
        runpy.run_path(str(config), run_name="__config__")  # as gunicorn will: its checks' SystemExit passes
    except Exception as exc:  # noqa: BLE001 - any fault of the file, in one line
        raise click.ClickException(f"{config}: {type(exc).__name__}: {exc}") from None
    # the gunicorn script of this install: beside the ``elimu`` script run (``pip install --user``
    # puts both in ~/.local/bin), else in the environment's scripts folder; never one found on PATH
    places = [Path(sys.argv[0]).absolute().parent, Path(sysconfig.get_path("scripts"))]
    gunicorn = next((place / "gunicorn" for place in places
                     if (place / "gunicorn").is_file() and os.access(place / "gunicorn", os.X_OK)), None)
    if gunicorn is None:
        raise click.ClickException(f"gunicorn is not installed beside elimu (in {places[-1]}): pip install the project")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(gunicorn, [str(gunicorn), "-c", str(config), WSGI_APP])


def _check_address_free(host: str, port: int) -> None:
    """One line, before anything starts, when ``host:port`` cannot be listened on (gunicorn would
    print a banner, then retry five times and end with "Can't connect")."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise click.ClickException(f"--host {host!r} is not an address of this machine ({exc.strerror})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.ClickException(f"{host}:{port} is already in use (another `elimu serve` or `make run`?):"
                                           " stop it, or choose another --port") from None
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _metrics_across_processes():
    """``/metrics`` adds up the counters of every process, as ``gunicorn.conf.py`` has it for
    ``gunicorn wsgi:app`` (each process would otherwise answer with its own, and Prometheus read
    every scrape landing on another process as a counter reset). Returns the ``child_exit`` hook."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="elimu-metrics-")
    shutil.rmtree(folder, ignore_errors=True)  # counts of an earlier run are not this one's
    os.makedirs(folder, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder

    def child_exit(_server, worker) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

    return child_exit


commands = [serve]
