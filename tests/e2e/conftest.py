"""Browser tests: the app served on loopback in a thread, driven by Playwright in Debian's Chromium."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect, sync_playwright
from werkzeug.serving import make_server

from ..conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Two shared cores under a full suite can be slow: wait longer than Playwright's 5 s default
# for what a user would see (a wait ends as soon as it is seen, so passing runs are not slower).
expect.set_options(timeout=15_000)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def new_page(browser: Browser, live_server: str):
    """A fresh browser context (its own cookies) per call: two calls are two agents."""
    contexts, console_errors = [], []

    def make(width: int = 1280, height: int = 900) -> Page:
        context = browser.new_context(base_url=live_server, viewport={"width": width, "height": height})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        # Script errors and Content-Security-Policy violations show up here; none are expected.
        page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
        page.on("pageerror", lambda error: console_errors.append(str(error)))
        return page

    yield make
    for context in contexts:
        context.close()
    expected = ("status of 4", "status of 5")  # refused requests a test provokes on purpose
    unexpected = [text for text in console_errors if not any(part in text for part in expected)]
    assert not unexpected, unexpected


def log_in(page: Page, username: str, password: str = PASSWORD, path: str = "/search") -> None:
    page.goto(path)
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
