"""``menus`` stays pure: no web framework, Redis, SQL or registry/gateway imports anywhere in it."""

from __future__ import annotations

import ast
from pathlib import Path

import menus

FORBIDDEN = ("flask", "werkzeug", "redis", "fakeredis", "sqlalchemy", "psycopg", "registry", "gateway", "workers")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_menus_imports_nothing_impure():
    files = list(Path(menus.__file__).parent.rglob("*.py"))
    assert len(files) > 8
    offenders = {
        str(path.name): sorted(n for n in imported_modules(path) if n.split(".")[0] in FORBIDDEN) for path in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}
