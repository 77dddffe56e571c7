"""Headless Debian Chromium for the real-browser tests (never a downloaded browser)."""
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


@pytest.fixture
def chromium():
    if not CHROMIUM.exists():
        pytest.skip("未安装 /usr/bin/chromium（apt-get install chromium fonts-wqy-microhei），跳过浏览器测试")
    return CHROMIUM


@contextmanager
def browser_page(executable, timeout_ms=None):
    """A Chinese-locale page. Start it only after the test's rows are written: inside Playwright's
    sync API the ORM would open a second connection in another context and leave it open."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
            if timeout_ms:
                context.set_default_timeout(timeout_ms)
            yield context.new_page()
        finally:
            browser.close()
