"""Debian's headless Chromium for the browser tests (scripts/setup.sh installs it with apt; no
tool downloads a browser of its own)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: The marks of a test that drives Chromium (a module's `pytestmark`): skipped, with the way to
#: install it, where it is missing.
CHROMIUM_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian's chromium is not installed at "
                       "/usr/bin/chromium (scripts/setup.sh installs it with apt)"),
]


def needs_chromium(test: Callable) -> Callable:
    """`CHROMIUM_MARKS` on one test."""
    for mark in CHROMIUM_MARKS:
        test = mark(test)
    return test


@contextmanager
def chromium() -> Iterator:
    """A running headless Chromium (playwright's sync API), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
