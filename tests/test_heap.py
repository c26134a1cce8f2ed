"""gateway.heap: a long-running process's start-up objects frozen out of the collector's full passes,
in every process that serves (gunicorn.conf.py, ``elimu serve``, ``elimu worker``)."""

from __future__ import annotations

import gc
import runpy
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import serve
from gateway.heap import freeze_start_up_objects

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the suite collects as before


def test_the_objects_alive_at_start_are_frozen_and_garbage_is_not() -> None:
    class Cycle:
        pass

    garbage = Cycle()
    garbage.me = garbage  # type: ignore[attr-defined]
    del garbage
    kept = [object()]
    frozen = freeze_start_up_objects()
    assert frozen == gc.get_freeze_count() > 10_000  # the test run's modules, at least
    assert not any(isinstance(o, Cycle) for o in gc.get_objects())  # collected first, not frozen
    assert gc.is_tracked(kept)
    gc.collect()  # a full pass leaves them frozen
    assert gc.get_freeze_count() == frozen


def test_gunicorn_conf_freezes_each_worker_once_the_app_is_loaded(monkeypatch, tmp_path) -> None:
    # the file sets PROMETHEUS_MULTIPROC_DIR when unset: kept to this test, or the processes later
    # tests start would inherit a metrics folder nobody made
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"), run_name="__config__")
    assert gc.get_freeze_count() == 0
    config["post_worker_init"](object())
    assert gc.get_freeze_count() > 0


def test_elimu_serve_gives_gunicorn_the_same_hook(monkeypatch) -> None:
    seen: dict[str, object] = {}
    monkeypatch.setattr(serve, "_gunicorn", lambda factory, options: seen.update(options) or _NotRun())
    monkeypatch.setattr(serve, "_check_address_free", lambda host, port: None)
    from click.testing import CliRunner

    from gateway.cli import cli

    result = CliRunner().invoke(cli, ["serve", "--port", "8999"], env={"REDIS_URL": "", "DATABASE_URL": "",
                                                                    "ELIMU_SECRET_KEY": "k" * 32})
    assert result.exit_code == 0, result.output
    seen["post_worker_init"](object())  # type: ignore[operator]
    assert gc.get_freeze_count() > 0


class _NotRun:
    def run(self) -> None:
        return None


def test_elimu_worker_freezes_once_built_before_it_works(monkeypatch) -> None:
    from workers import worker as module

    steps: list[str] = []

    class Worker:
        def work(self, **_options: object) -> None:
            steps.append(f"work (frozen: {gc.get_freeze_count() > 0})")

    class Keeper:
        def __init__(self, _runtime: object) -> None: ...
        def start(self) -> None: ...
        def stop(self) -> None: ...

    monkeypatch.setattr(module, "use_runtime", lambda runtime: None)
    monkeypatch.setattr(module, "Housekeeper", Keeper)
    monkeypatch.setattr(module, "build_worker", lambda runtime, bulk: steps.append("built") or Worker())
    module.run_worker(object())  # type: ignore[arg-type]
    assert steps == ["built", "work (frozen: True)"]
