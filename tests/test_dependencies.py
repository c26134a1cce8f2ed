"""pyproject.toml's minimum versions stay above releases with known vulnerabilities on the paths
this service uses. Found by the security review: several allowed vulnerable releases."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> the first release without the advisories named beside it in pyproject.toml
FLOORS = {
    "werkzeug": (3, 0, 6),
    "gunicorn": (23, 0),
    "requests": (2, 32, 4),
    "urllib3": (2, 6, 0),
    "orjson": (3, 9, 15),
}


def minimums() -> dict[str, tuple[int, ...]]:
    """Each dependency's ``>=`` version, by lower-case name."""
    found = {}
    for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        match = re.match(r"([A-Za-z0-9_.-]+)(\[[^]]*\])?\s*>=\s*([0-9.]+)", spec)
        if match:
            found[match.group(1).lower()] = tuple(int(part) for part in match.group(3).split("."))
    return found


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_no_known_vulnerable_minimum(package):
    assert minimums().get(package, (0,)) >= FLOORS[package], f"{package} allows a release with a known advisory"
