"""Fixtures for USSD tests: fast (SQLite + fakeredis) and integration (PostgreSQL + Redis) stacks."""

from __future__ import annotations

import pytest

from gateway.app import create_app
from gateway.runtime import Runtime
from tests.conftest import TEST_SECRET
from tests.ussd.support import Clock, Phone, SmsCapture, World


def _prepare(rt: Runtime) -> tuple[Clock, SmsCapture]:
    clock = Clock()
    rt.extras["clock"] = clock
    capture = SmsCapture(rt.db)
    forward = rt.db.dispatch

    def dispatch(pending):
        capture(pending)
        if forward is not None:
            forward(pending)

    rt.db.dispatch = dispatch
    return clock, capture


@pytest.fixture
def stack(runtime):
    """SQLite + fakeredis: (clock, sms capture, world, client)."""
    clock, sms = _prepare(runtime)
    app = create_app(runtime=runtime)
    app.config.update(TESTING=True)
    return clock, sms, World(runtime.db, TEST_SECRET), app.test_client()


@pytest.fixture
def clock(stack) -> Clock:
    return stack[0]


@pytest.fixture
def sms(stack) -> SmsCapture:
    return stack[1]


@pytest.fixture
def world(stack) -> World:
    return stack[2]


@pytest.fixture
def ussd(stack):
    """A factory of handsets: ``ussd()`` is the default phone, ``ussd(STRANGER)`` another."""
    _, sms, _, client = stack
    return lambda phone=None, wire_phone=None: Phone(client, sms, phone or "+254712345678", wire_phone)


@pytest.fixture
def real_stack(integration_runtime):
    """PostgreSQL + real Redis: (clock, sms capture, world, client)."""
    clock, sms = _prepare(integration_runtime)
    app = create_app(runtime=integration_runtime)
    app.config.update(TESTING=True)
    return clock, sms, World(integration_runtime.db, TEST_SECRET), app.test_client()


@pytest.fixture
def real_ussd(real_stack):
    _, sms, _, client = real_stack
    return lambda phone=None: Phone(client, sms, phone or "+254712345678")
