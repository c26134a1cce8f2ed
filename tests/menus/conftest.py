"""Fixtures for the pure menu tests: a strict engine and a scripted registry."""

from __future__ import annotations

import pytest

from menus.app import build_engine
from menus.engine import Engine
from tests.menus.menu_fakes import Conversation, FakeServices


@pytest.fixture
def engine() -> Engine:
    return build_engine(strict=True)


@pytest.fixture
def fake() -> FakeServices:
    return FakeServices()


@pytest.fixture
def talk(engine: Engine, fake: FakeServices) -> Conversation:
    return Conversation(engine, fake)
