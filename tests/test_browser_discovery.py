"""The browser tests find Chromium on PATH under any of its usual names, or playwright's."""

from __future__ import annotations

import stat

import pytest
from browser import HOW_TO_INSTALL, PATH_NAMES, find_browser, open_offline


def fake_executable(directory, name):
    path = directory / name
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("name", PATH_NAMES)
def test_each_name_on_path_is_found(tmp_path, monkeypatch, name):
    monkeypatch.delenv("SAE_SPECIALISTS_BROWSER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    expected = fake_executable(tmp_path, name)
    assert find_browser() == str(expected)


def test_path_order_and_explicit_choice(tmp_path, monkeypatch):
    monkeypatch.delenv("SAE_SPECIALISTS_BROWSER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    fake_executable(tmp_path, "google-chrome")
    first = fake_executable(tmp_path, "chromium-browser")
    assert find_browser() == str(first)
    chosen = fake_executable(tmp_path / "..", "my-chrome")
    monkeypatch.setenv("SAE_SPECIALISTS_BROWSER", str(chosen))
    assert find_browser() == str(chosen)


def test_nothing_on_path_falls_back_to_playwright(tmp_path, monkeypatch):
    import browser as module

    monkeypatch.delenv("SAE_SPECIALISTS_BROWSER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(module, "playwright_chromium", lambda: "/opt/pw/chrome")
    assert find_browser() == "/opt/pw/chrome"
    monkeypatch.setattr(module, "playwright_chromium", lambda: None)
    assert find_browser() is None


def test_found_browser_renders_a_page(tmp_path, browser):
    """The session's browser (conftest.py: find_browser + launch, one playwright per worker:
    a second sync_playwright in the same process is refused) renders a page offline."""
    assert find_browser(), HOW_TO_INSTALL
    page_file = tmp_path / "p.html"
    page_file.write_text('<p id="x">中文 👩🏽‍💻</p><img src="https://example.org/x.png">')
    page, errors, blocked = open_offline(browser, page_file)
    assert page.locator("#x").inner_text() == "中文 👩🏽‍💻"
    assert blocked == ["https://example.org/x.png"]
    page.close()
