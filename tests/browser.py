"""Headless Chromium for the HTML checks: which browser, how to launch it, how to load a page
offline.

A browser is looked for, in order, as ``$SAE_SPECIALISTS_BROWSER`` (a path), ``chromium``,
``chromium-browser``, ``google-chrome`` or ``google-chrome-stable`` on ``PATH``, then the Chromium
that ``playwright install chromium`` downloaded. Set-up: Debian/Ubuntu ``apt-get install chromium``
(or ``chromium-browser``), or ``python -m playwright install chromium``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PATH_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
HOW_TO_INSTALL = (
    "no Chromium found: install Debian's `chromium` (apt-get install chromium), or run "
    "`python -m playwright install chromium`, or set SAE_SPECIALISTS_BROWSER to a Chromium or "
    "Chrome executable"
)


def playwright_chromium() -> str | None:
    """The executable of playwright's own Chromium, if it was downloaded."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as p:
        path = p.chromium.executable_path
    return path if path and Path(path).is_file() else None


def find_browser() -> str | None:
    """The first Chromium-family executable found (see the module doc), else None."""
    explicit = os.environ.get("SAE_SPECIALISTS_BROWSER")
    if explicit:
        return explicit if Path(explicit).is_file() else shutil.which(explicit)
    for name in PATH_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return playwright_chromium()


def launch(playwright, executable: str):
    return playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)


def open_offline(browser, path: Path, viewport=(1200, 900)):
    """Load ``path`` from file:// with every non-file request aborted; return (page, errors,
    blocked requests)."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    errors: list[str] = []
    blocked: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(Path(path).resolve().as_uri(), wait_until="load")
    return page, errors, blocked


class OfflineTab:
    """One tab that loads page after page offline, as ``open_offline`` does for one: a page of
    its own costs ~0.3 s to set up, which a check of a hundred pages would pay a hundred times.
    ``visit(path)`` returns (page, errors, blocked) of that page alone."""

    def __init__(self, browser, viewport=(1200, 900)):
        self.page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self._route)

    def _route(self, r):
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            self.blocked.append(r.request.url)
            r.abort()

    def visit(self, path: Path):
        self.errors, self.blocked = [], []
        self.page.goto(Path(path).resolve().as_uri(), wait_until="load")
        return self.page, self.errors, self.blocked

    def close(self) -> None:
        self.page.close()
