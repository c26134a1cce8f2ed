"""The deployment files and the install steps of docs/deploy.md agree with each other."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import ports

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"


def _install_steps() -> list[list[str]]:
    """The commands of docs/deploy.md's systemd install block, each split as the shell would."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    block = re.search(r"With systemd.*?\n```\n(.*?)\n```", text, re.S)
    assert block, "docs/deploy.md has no systemd install block"
    return [shlex.split(line, comments=True) for line in block.group(1).splitlines() if line.strip()]


def _unit_file(name: str) -> str:
    """The file a unit name is read from (``x@1`` from ``x@.service``; no suffix is a service)."""
    name = name if "." in name else f"{name}.service"
    return re.sub(r"@[^.]+\.", "@.", name)


def test_every_unit_the_steps_enable_is_copied_by_them():
    steps = _install_steps()
    copied = {file.name for step in steps if step[:2] == ["sudo", "cp"]
              for pattern in step[2:-1] for file in UNITS.iterdir()
              if fnmatch.fnmatch(f"deploy/systemd/{file.name}", pattern)}
    enabled = [name for step in steps if step[:4] == ["sudo", "systemctl", "enable", "--now"] for name in step[4:]]
    assert enabled and {_unit_file(name) for name in enabled} <= copied, (enabled, copied)
    assert any(step[1:3] == ["systemctl", "daemon-reload"] for step in steps)


def test_folders_exist_before_the_steps_write_into_them():
    """``useradd --system`` makes no home, and ``install`` without ``-D`` makes no folder."""
    steps = [" ".join(step) for step in _install_steps()]
    made = next(i for i, step in enumerate(steps) if step.startswith("sudo install -d") and "/opt/elimu" in step)
    cloned = next(i for i, step in enumerate(steps) if "git clone" in step)
    assert made < cloned
    env_file = next(step for step in steps if step.endswith("/etc/elimu/elimu.env") and "install" in step)
    assert " -D " in env_file and "-g elimu" in env_file


def _service(path: Path) -> dict[str, list[str]]:
    """The ``[Service]`` settings of a unit file, each with its values in order."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def _environment(service: dict[str, list[str]]) -> dict[str, str]:
    """What the process sees: the unit's ``Environment=``, then the example environment file over it."""
    env = dict(value.partition("=")[::2] for value in service.get("Environment", []))
    if service.get("EnvironmentFile"):
        example = (ROOT / "deploy" / "elimu.env.example").read_text().splitlines()
        env |= dict(line.partition("=")[::2] for line in example if "=" in line and not line.startswith("#"))
    return env


def _writable(service: dict[str, list[str]]) -> list[Path]:
    """The folders a unit under ``ProtectSystem=strict`` may write to."""
    folders = [Path("/var/lib", name) for value in service.get("StateDirectory", []) for name in value.split()]
    folders += [Path("/run", name) for value in service.get("RuntimeDirectory", []) for name in value.split()]
    return folders + [Path(p.lstrip("-")) for value in service.get("ReadWritePaths", []) for p in value.split()]


@pytest.mark.parametrize("unit", sorted(UNITS.glob("*.service")), ids=lambda p: p.name)
def test_what_a_unit_writes_is_writable_under_its_protection(unit):
    """The spool of degraded mode (``ELIMU_INSTANCE_PATH``/spool) and the metrics files are writable:
    under ``ProtectSystem=strict`` with no state directory the web could spool nothing."""
    service = _service(unit)
    if service.get("ProtectSystem") != ["strict"]:
        return  # elimu-purge: writes no files, and may write anywhere its user can
    env = _environment(service)
    assert "ELIMU_INSTANCE_PATH" in env, f"{unit.name}: spools under /opt/elimu, read-only to it"
    writes = [Path(env["ELIMU_INSTANCE_PATH"]) / "spool"]
    writes += [Path(env["PROMETHEUS_MULTIPROC_DIR"])] if "PROMETHEUS_MULTIPROC_DIR" in env else []
    for path in writes:
        assert any(path.is_relative_to(folder) for folder in _writable(service)), f"{unit.name}: {path} is read-only"


def test_the_units_and_the_environment_file_agree_on_the_instance_folder():
    spooling = [_service(UNITS / name) for name in ("elimu-web.service", "elimu-worker@.service",
                                                    "elimu-worker-urgent.service")]
    assert {_environment(service)["ELIMU_INSTANCE_PATH"] for service in spooling} == {"/var/lib/elimu"}
    assert all(value.partition("=")[2] == "/var/lib/elimu" for service in spooling
               for value in service["Environment"] if value.startswith("ELIMU_INSTANCE_PATH="))


@pytest.mark.parametrize(("name", "value"), [("ELIMU_THREADS", "0"), ("ELIMU_THREADS", "four"),
                                             ("WEB_CONCURRENCY", "0")])
def test_gunicorn_conf_names_a_bad_count_in_one_line(name, value, tmp_path):
    env = {**os.environ, name: value, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "import runpy; runpy.run_path('gunicorn.conf.py')"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (1, f"Error: {name} must be a whole number from 1, not {value!r}\n")


def test_gunicorn_conf_reads_its_counts():
    env = {**os.environ, "ELIMU_THREADS": "8", "WEB_CONCURRENCY": "3"}
    done = subprocess.run([sys.executable, "-c", "import runpy; c = runpy.run_path('gunicorn.conf.py'); "
                           "print(c['workers'], c['threads'])"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["3", "8"], done.stderr


def _web_commands() -> dict[str, list[str]]:
    """How the unit and the Procfile start the web service, with this checkout's paths."""
    bin_dir = Path(sys.executable).parent
    unit = _service(UNITS / "elimu-web.service")["ExecStart"]
    procfile = [line.partition(":")[2] for line in (ROOT / "Procfile").read_text().splitlines()
                if line.startswith("web:")]
    commands = {"elimu-web.service": unit[0], "Procfile": procfile[0]}
    local = {"/opt/elimu/.venv/bin/elimu": str(bin_dir / "elimu"), "elimu": str(bin_dir / "elimu"),
             "/opt/elimu/gunicorn.conf.py": str(ROOT / "gunicorn.conf.py")}
    return {name: [local.get(word, word) for word in shlex.split(command)] for name, command in commands.items()}


def _web_environment(tmp_path: Path, **env: str) -> dict[str, str]:
    environ = {**os.environ, "ELIMU_ENV": "development", "ELIMU_SECRET_KEY": "test-secret-key-0123456789abcdef",
               "ELIMU_INSTANCE_PATH": str(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), **env}
    for name in ("DATABASE_URL", "REDIS_URL", "ELIMU_REDIS_SENTINELS"):
        environ.pop(name, None)
    return environ


def test_the_unit_and_the_procfile_start_the_web_through_elimu_serve():
    """Through `elimu serve --config`, which checks WEB_CONCURRENCY before gunicorn reads it, and
    reload signals $MAINPID: gunicorn's master, since `elimu serve --config` execs it."""
    assert {name: command[1:] for name, command in _web_commands().items()} == {
        "elimu-web.service": ["serve", "--config", str(ROOT / "gunicorn.conf.py")],
        "Procfile": ["serve", "--config", "gunicorn.conf.py"],
    }
    service = _service(UNITS / "elimu-web.service")
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service.get("Type", ["simple"]) == ["simple"] and "KillMode" not in service  # TERM to the master alone


@pytest.mark.parametrize("started_by", ["elimu-web.service", "Procfile"])
@pytest.mark.parametrize(("name", "value"), [("WEB_CONCURRENCY", "abc"), ("WEB_CONCURRENCY", "0"),
                                             ("ELIMU_THREADS", "four"), ("ELIMU_THREADS", "0")])
def test_a_bad_count_stops_the_web_as_deployed_in_one_line(started_by, name, value, tmp_path):
    """`WEB_CONCURRENCY=abc gunicorn -c gunicorn.conf.py wsgi:app`, as the unit and the Procfile ran
    it, printed gunicorn's traceback (it takes int() of it when imported, before the config)."""
    done = subprocess.run(_web_commands()[started_by], cwd=ROOT, env=_web_environment(tmp_path, **{name: value}),
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (1, f"Error: {name} must be a whole number from 1, not {value!r}\n")


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return found


def _until(check, what: str, seconds: float = 60.0):  # noqa: ANN001, ANN202 - a test helper
    """``check()``'s first true answer, polled; fails naming ``what`` if none comes in ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if answer := check():
            return answer
        time.sleep(0.05)
    pytest.fail(f"no {what} in {seconds:.0f} s")


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False


def test_the_web_as_deployed_is_gunicorns_master_and_reloads_and_stops_on_its_signals(tmp_path):
    """The Procfile's command becomes gunicorn's master in its own process (what systemd's $MAINPID
    and a Procfile runner signal): HUP starts new workers, one still on the embedded Redis whatever
    WEB_CONCURRENCY says (a reload reads the config again without on_starting), and TERM stops it
    gracefully with exit 0."""
    with ports.listening_socket() as sock:
        port = sock.getsockname()[1]
        env = _web_environment(tmp_path, ELIMU_BIND=f"fd://{sock.fileno()}", WEB_CONCURRENCY="3")
        log = (tmp_path / "web.log").open("w")
        web = subprocess.Popen(_web_commands()["Procfile"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               pass_fds=[sock.fileno()])
    try:
        _until(lambda: _healthy(port), "answer on /healthz")
        argv = Path(f"/proc/{web.pid}/cmdline").read_bytes().split(b"\0")
        assert Path(argv[1].decode()).name == "gunicorn" and argv[-2:] == [b"wsgi:app", b""], argv
        first = _children(web.pid)
        assert len(first) == 1, first
        web.send_signal(signal.SIGHUP)
        _until(lambda: (kids := _children(web.pid)) and not kids & first, "new worker after HUP")
        assert len(_children(web.pid)) == 1
        _until(lambda: _healthy(port), "answer on /healthz after the reload")
        web.send_signal(signal.SIGTERM)
        assert web.wait(timeout=60) == 0
    finally:
        if web.poll() is None:
            web.kill()
            web.wait()
        log.close()
    text = (tmp_path / "web.log").read_text()
    assert "Handling signal: hup" in text and "Handling signal: term" in text and "Traceback" not in text, text
