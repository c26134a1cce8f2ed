"""The deployment files and the install steps of docs/deploy.md agree with each other."""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path

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
