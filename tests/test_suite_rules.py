"""Rules the test suite keeps so that a green CI run proves something: under ``CI`` nothing skips
(a missing tool fails the run, through ``tests.conftest.missing``), and an expected failure is strict
(a fixed bug whose test still says xfail would otherwise pass unseen)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SKIPS = {"skip", "importorskip"}
BARE = {"pytest.mark.skip": "skip", "pytest.mark.xfail": "xfail"}


def _calls(tree: ast.AST) -> list[tuple[int, str, ast.Call]]:
    """``pytest.<name>(...)`` and ``pytest.mark.<name>(...)`` calls: (line, name, call)."""
    found, called = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            called.add(id(node.func))
            if ast.unparse(node.func.value) in ("pytest", "pytest.mark"):
                found.append((node.lineno, node.func.attr, node))
    for node in ast.walk(tree):  # a bare ``@pytest.mark.xfail`` (no strict) or ``@pytest.mark.skip``
        if isinstance(node, ast.Attribute) and id(node) not in called and ast.unparse(node) in BARE:
            found.append((node.lineno, BARE[ast.unparse(node)], None))
    return found


def _offences() -> list[str]:
    offences = []
    for path in sorted(TESTS.rglob("*.py")):
        name = path.relative_to(TESTS.parent).as_posix()
        for line, attr, call in _calls(ast.parse(path.read_text(), name)):
            where = f"{name}:{line}"
            if attr in SKIPS and name != "tests/conftest.py":
                offences.append(f"{where}: pytest.{attr} skips under CI too; call tests.conftest.missing")
            elif attr == "skipif" and call is not None and "sys.platform" not in ast.unparse(call.args[0]):
                offences.append(f"{where}: skipif on anything but the platform skips under CI")
            elif attr == "xfail" and (call is None or not any(
                    k.arg == "strict" and ast.unparse(k.value) == "True" for k in call.keywords)):
                offences.append(f"{where}: xfail without strict=True passes when the bug is fixed")
    return offences


def test_nothing_skips_under_ci_and_every_xfail_is_strict():
    assert _offences() == []


def test_property_tests_draw_the_same_examples_under_ci_with_no_deadline():
    """Hypothesis loads its own ``ci`` profile when ``CI`` is set (derandomized, no 200 ms deadline
    that a loaded 2-core machine can miss): a red CI run is reproducible, never a timing draw."""
    import os

    from hypothesis import settings

    if os.environ.get("CI"):
        assert settings.default.derandomize and settings.default.deadline is None
