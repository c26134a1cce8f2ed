"""The web phone in headless Chromium (Debian's ``chromium``, driven by Playwright): dial, activate a demo
parent, and see the OTP arrive in the page's inbox."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.conftest import missing
from tests.test_simulator import PARENT, server  # noqa: F401 - the live-server fixture

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def page():
    if not CHROMIUM:
        missing("chromium is not installed", ".ci/run installs it: apt-get install chromium")
    try:
        import playwright.sync_api as playwright_api
    except ImportError:
        missing("playwright is not installed", "make install: pyproject.toml's dev extra has it")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.set_default_timeout(20_000)
        yield page
        browser.close()


def test_browser_activates_a_parent_and_sees_the_otp(page, server):  # noqa: F811
    from playwright.sync_api import expect

    page.goto(f"{server}/simulator")
    page.fill("#phone", PARENT)
    page.click("#dial")
    expect(page.locator("#screen")).to_contain_text("Welcome")

    def answer(value: str, expected: str) -> None:
        page.fill("#answer", value)
        page.click("#send")
        expect(page.locator("#screen")).to_contain_text(re.compile(expected, re.I))

    answer("1", "birth certificate")
    answer("556677", "date of birth")
    answer("05092013", "code")
    inbox = page.locator("#inbox")
    expect(inbox).to_contain_text(re.compile(r"\b\d{6}\b"), timeout=30_000)
    otp = re.search(r"\b(\d{6})\b", inbox.inner_text()).group(1)
    answer(otp, "PIN")
    answer("2580", "again")
    answer("2580", "active")
    expect(page.locator("#screen")).to_contain_text("[session ended]")
    expect(inbox).to_contain_text("KX7P9Q", timeout=30_000)  # the UPI arrived by SMS
