"""Browser tests: a real Chromium (Debian's, never a Playwright download) driven by Playwright
against pytest-django's live server.

Playwright's sync API runs an asyncio event loop in the test thread; Django refuses ORM calls
from a thread with a running loop unless told that this is deliberate, hence
``DJANGO_ALLOW_ASYNC_UNSAFE=true`` (test-only: the ORM calls here are ordinary synchronous ones).
It is set while a browser runs, so other tests keep Django's check.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import CHROMIUM, skip_or_fail

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium_browser(monkeypatch):
    """A headless Chromium (``playwright.sync_api.Browser``), closed after the test. Skips (or
    fails under ``BREACHDESK_REQUIRE_ALL=1``) when Debian's chromium is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium; runs in CI)")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
