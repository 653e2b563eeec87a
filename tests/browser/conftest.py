"""Browser fixtures: one headless Chromium per test module (tabs are cheap; a browser start is
not). The local SFU (one per session) is tests/conftest.py's ``sfu``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.peer import Chromium


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.sfu)
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    """A synchronous fixture: every test's event loop can talk to it."""
    browser = Chromium().start()
    try:
        yield browser
    finally:
        browser.stop()
