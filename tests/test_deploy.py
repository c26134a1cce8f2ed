"""The deployment files and the install steps of docs/deploy.md agree with each other."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

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
