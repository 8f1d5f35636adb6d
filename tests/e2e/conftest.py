"""Fixtures of the end-to-end tests: the stack, and a headless Chromium.

See tests/e2e/README.md for the interface. Everything here talks to the stack
over HTTP (and NATS where a test needs it); no service is imported.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_stack import CHROMIUM_ARGS, ROOT, Stack, cleanup, stack_from_environment

CHROMIUM = os.environ.get("STUDIO_E2E_CHROMIUM", "/usr/bin/chromium")
HLS_JS = ROOT / "web" / "player" / "vendor" / "hls.min.js"
RESULTS = ROOT / "test-results"
E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _in_e2e(item):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(
        getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


_running: list[Stack] = []


def _shut_down(started: Stack) -> None:
    if started not in _running:
        return
    _running.remove(started)
    code = started.stop()
    if code not in (None, 0):
        sys.stderr.write(
            f"\nstudio-dev up ended with {code}\n--- stack log ---\n{started.log_tail()}\n"
        )
    cleanup(started, keep_data=os.environ.get("STUDIO_E2E_KEEP_DATA") == "1")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The stack under test: ``STUDIO_E2E_GATEWAY_URL``'s, or a private one
    started with ``uv run studio-dev up`` and stopped (SIGINT) after the last
    e2e test (its database connections are not kept while other tests run)."""
    started = stack_from_environment()
    _running.append(started)
    try:
        yield started
    finally:
        _shut_down(started)


def _in_e2e(item: pytest.Item | None) -> bool:
    return item is not None and E2E_DIR in Path(str(item.fspath)).resolve().parents


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """The e2e tests run together; once the last of them is done, so is the stack."""
    if _in_e2e(item) and not _in_e2e(nextitem):
        for started in list(_running):
            _shut_down(started)


@pytest.fixture(autouse=True)
def _stack_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failed e2e test prints the tail of the stack's log."""
    yield
    if "stack" in request.fixturenames and _failed(request):
        stack: Stack = request.getfixturevalue("stack")
        sys.stderr.write(f"\n--- stack log (tail) ---\n{stack.log_tail(150)}\n")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright: never a downloaded browser.

    Module-scoped: Playwright's sync API keeps an event loop marked running in
    this thread while it is open, and the asyncio tests that run after the e2e
    modules need it closed."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page; a screenshot goes to test-results/ when the test fails."""
    # Tests inject hls.js and their own page into gateway-origin documents; the
    # gateway's Content-Security-Policy is for the real player, not for them.
    context = browser.new_context(bypass_csp=True)
    tab = context.new_page()
    console: list[str] = []
    tab.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    try:
        yield tab
    finally:
        if _failed(request):
            RESULTS.mkdir(exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-120:]
            try:
                tab.screenshot(path=str(RESULTS / f"{name}.png"), full_page=True)
            except Exception as exc:  # a crashed page still fails the test, not teardown
                sys.stderr.write(f"no screenshot: {exc}\n")
            (RESULTS / f"{name}.console.txt").write_text("\n".join(console))
        context.close()


@pytest.fixture(scope="session")
def hls_js() -> Path:
    return HLS_JS


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if not found:
        pytest.fail("ffmpeg is missing: apt-get install -y ffmpeg")
    return found
